#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# Dual-licensed: Apache License 2.0 (see LICENSE) or, at your option,
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: kubevirt_vm
short_description: Declare KubeVirt VirtualMachines, one or many per task
version_added: 1.0.0
author:
  - virtfleet.kubevirt contributors (@virtfleet)
description:
  - Create, update, delete, start, stop, restart, pause and unpause KubeVirt C(VirtualMachines).
  - Options and return values are those of C(kubevirt.core.kubevirt_vm) 2.x, so a playbook migrates by changing
    the collection prefix. Beyond it, the module builds common VMs from a few options (O(cpu), O(memory),
    O(boot_disk), O(cloud_init), O(networks), ...), declares many VMs in one task with O(vms), and waits exactly.
  - An existing VM is updated as C(kubevirt.core) updates it; only the fields the task gives are written (a JSON
    merge patch). Everything else on the VM stays as it is, whoever set it, including fields an earlier run of
    this module set. A task that gives only O(labels) and O(state) changes the labels and the run state, nothing
    else. Labels, annotations and other dictionaries are merged key by key. A list given whole in O(spec) or
    O(data_volume_templates) replaces the VM's list, and a disk, volume, interface, network or DataVolume
    template built by O(boot_disk), O(cloud_init) or O(networks) replaces only the element of the same name.
  - When the VM already has every given field, the module sends no write request, adds nothing to the VM (no
    annotation), and reports C(changed=false), also for VMs this module never wrote.
  - O(full_ownership=true) makes the task the owner of the whole declaration. O(force=true) replaces the whole
    object, as in C(kubevirt.core).
  - Unlike C(kubevirt.core), the deprecated C(spec.running) is never sent unless O(running) is set, the run
    strategy is only defaulted (to C(Always)) when the VM is created and never changed on update unless
    O(run_strategy) or O(running) is given, and check mode predicts lifecycle states from the VM's current state.
  - Also unlike C(kubevirt.core), which does not look at pause, O(state=started) unpauses a paused VM, and
    O(state=paused) pauses running ones. Pause is a state of this module rather than a module of its own because
    it is the run state of a VM, like started and stopped; so O(vms) pauses many VMs in one task with the same
    check mode, outcomes and single-deadline wait as every other state.
options:
  name:
    description:
      - Name of the C(VirtualMachine).
      - Mutually exclusive with O(generate_name) and O(vms).
    type: str
  generate_name:
    description:
      - Prefix of the name; the API server adds random characters. Every run creates a new VM.
      - Only with O(state=present). Mutually exclusive with O(name).
    type: str
  namespace:
    description:
      - Namespace of the C(VirtualMachine). Required, at the top level or in every O(vms) item.
    type: str
  create_namespace:
    description:
      - Create the namespace of the VM (of every VM, with O(vms)) when it does not exist, like the option of
        the same name of C(kubernetes.core.helm). Off by default, as in C(kubevirt.core), where a missing
        namespace fails the task.
      - No request is spent on it when the namespace exists. The VM is written as usual; only when the API
        server answers that its namespace is not found is the namespace created (a plain C(v1) C(Namespace)
        with no labels) and that write sent again. Needs the RBAC permission to create C(namespaces) (cluster
        scope); without it the task fails and says so.
      - In check mode the namespace create is a server dry run, and the VMs of a namespace that does not exist
        yet are predicted from the options without a server dry run (one in a missing namespace would fail).
      - RV(namespaces_created) lists the namespaces that were (or would be) created; they also appear in RV(diff).
      - O(state=absent) never creates or deletes a namespace.
    type: bool
    default: false
  api_version:
    description:
      - API version of KubeVirt's C(VirtualMachine).
    type: str
    default: kubevirt.io/v1
  state:
    description:
      - V(present) creates the VM or updates it to match the options.
      - V(absent) deletes it.
      - V(started) makes sure it exists (when a spec is given) and runs. A VM that runs already is not touched.
        Halted or C(Manual) VMs are started through the C(start) subresource.
      - V(stopped) makes sure it exists and does not run, through the C(stop) subresource. On create the run
        strategy defaults to C(Halted).
      - V(restarted) restarts a running VM (C(restart) subresource) or starts a stopped one; it always reports a change.
        V(restart) is a synonym of V(restarted) that only this collection accepts (C(kubevirt.core) 2.3.0 has no such
        choice).
      - V(paused) makes sure the VM runs with its guest paused (the C(VirtualMachineInstance)'s condition C(Paused)
        is true, the VM's C(printableStatus) is C(Paused)). A running VM is paused through the
        C(VirtualMachineInstance)'s C(pause) subresource; a paused one is not touched. A VM that does not run (or
        whose C(VirtualMachineInstance) does not run yet) is not started; that VM fails, with no request sent for
        it, and the others of the task are still handled. Pausing freezes a guest that runs; booting a stopped guest
        (its services, cloud-init, side effects) only to freeze it is rarely what was meant, so start it first
        (V(started) with O(wait)), then pause it. A VM that does not exist is not created with V(paused). This
        collection only (C(kubevirt.core) has no such choice).
      - A paused VM is unpaused by V(started) (C(unpause) subresource), since started means the guest runs. V(stopped)
        stops it and V(restarted) restarts it as KubeVirt allows on a paused VM; the new C(VirtualMachineInstance)
        of a restart runs unpaused. A paused guest cannot answer the shutdown signal, so KubeVirt ends it after its
        termination grace period (O(grace_period_seconds) shortens that). V(present) leaves the pause as it is.
      - With O(wait), V(started) waits for the VM's C(Ready) condition (after an unpause also for the C(Paused)
        condition to be gone), V(stopped) until its C(VirtualMachineInstance) is gone, V(restarted) until a new
        C(VirtualMachineInstance) (another uid) is Ready, V(paused) until the C(VirtualMachineInstance)'s C(Paused)
        condition is true and the VM reports C(Paused), V(absent) until the VM is gone. A paused VM is not Ready, so
        V(present) with O(wait) waits for it to be reported paused instead.
    type: str
    default: present
    choices: [present, absent, started, stopped, restarted, restart, paused]
  definition:
    description:
      - A complete C(VirtualMachine) manifest, used as given. O(name) and O(namespace) fill in missing metadata.
      - Mutually exclusive with the options that build the VM (O(spec), O(labels), O(cpu), ...).
    type: dict
    aliases: [resource_definition]
  labels:
    description:
      - Labels of the VM; like C(kubevirt.core) they are also set on the VMI template.
    type: dict
  annotations:
    description:
      - Annotations of the VM; like C(kubevirt.core) they are also set on the VMI template.
    type: dict
  instancetype:
    description:
      - Instancetype matcher (C(spec.instancetype)), for example C(name=u1.medium).
      - Mutually exclusive with O(cpu) and O(memory).
    type: dict
  preference:
    description:
      - Preference matcher (C(spec.preference)), for example C(name=fedora).
    type: dict
  data_volume_templates:
    description:
      - C(spec.dataVolumeTemplates) of the VM.
    type: list
    elements: dict
  spec:
    description:
      - The VMI template spec (C(spec.template.spec)). It is merged over what the convenience options build and wins
        (dictionaries merge, lists replace).
    type: dict
  running:
    description:
      - Deprecated by KubeVirt in favour of O(run_strategy); sends C(spec.running) only when set.
      - Mutually exclusive with O(run_strategy).
    type: bool
  run_strategy:
    description:
      - C(spec.runStrategy). When neither this nor O(running) is given, a new VM gets C(Always) (C(Halted) with
        O(state=stopped)) and an existing VM keeps its run strategy.
    type: str
    choices: [Always, Halted, Manual, RerunOnFailure, Once]
  cpu:
    description:
      - CPU topology, C(spec.template.spec.domain.cpu).
    type: dict
    suboptions:
      cores:
        description: Number of cores per socket.
        type: int
      sockets:
        description: Number of sockets.
        type: int
      threads:
        description: Number of threads per core.
        type: int
      model:
        description: CPU model, for example C(host-passthrough).
        type: str
  memory:
    description:
      - Guest memory, for example C(2Gi) (C(spec.template.spec.domain.memory.guest)).
    type: str
  boot_disk:
    description:
      - The boot disk (volume and disk C(rootdisk)). Give exactly one source.
      - O(boot_disk.url), O(boot_disk.registry) and O(boot_disk.clone_from) create a DataVolume template named
        C(<name>-rootdisk) that CDI imports or clones.
    type: dict
    suboptions:
      container_image:
        description: An ephemeral C(containerDisk) from this image.
        type: str
      url:
        description: Import this HTTP(S) URL into a DataVolume. Needs O(boot_disk.size).
        type: str
      registry:
        description: Import this container image (C(docker://) is added when missing) into a DataVolume. Needs O(boot_disk.size).
        type: str
      clone_from:
        description: Clone this PVC into a DataVolume.
        type: dict
        suboptions:
          name:
            description: Name of the PVC to clone.
            type: str
            required: true
          namespace:
            description: Namespace of that PVC; defaults to the VM's.
            type: str
      pvc:
        description: Use this existing PVC.
        type: str
      size:
        description: Size of the DataVolume, for example C(10Gi).
        type: str
      storage_class:
        description: Storage class of the DataVolume.
        type: str
      access_modes:
        description: Access modes of the DataVolume, for example C([ReadWriteMany]) for live migration.
        type: list
        elements: str
      bus:
        description: Disk bus.
        type: str
  cloud_init:
    description:
      - A C(cloudInitNoCloud) volume and disk C(cloudinit).
      - Either O(cloud_init.user_data) or the options that generate a C(#cloud-config) (O(cloud_init.user),
        O(cloud_init.password), O(cloud_init.ssh_authorized_keys)).
    type: dict
    suboptions:
      user_data:
        description:
          - Raw user data. It is sensitive (not logged) like O(cloud_init.password), see the notes.
        type: str
      network_data:
        description: Raw network data (netplan v1/v2 YAML).
        type: str
      user:
        description: Default user name of the image.
        type: str
      password:
        description:
          - Password of the default user. It is not logged, but it is stored in the VM's spec like any user data.
        type: str
      ssh_authorized_keys:
        description: Public SSH keys for the default user.
        type: list
        elements: str
  networks:
    description:
      - Networks and their interfaces. An entry without O(networks[].multus) is the pod network.
      - When the VM is built from convenience options and neither this nor O(spec) defines networks, the VM gets
        the pod network with C(masquerade) binding, named C(default).
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the network and its interface.
        type: str
        required: true
      multus:
        description: A Multus C(NetworkAttachmentDefinition), C(<namespace>/<name>) or C(<name>).
        type: str
      binding:
        description: Interface binding; default C(masquerade) on the pod network, C(bridge) on Multus.
        type: str
        choices: [masquerade, bridge]
      mac_address:
        description: Fixed MAC address of the interface.
        type: str
      model:
        description: NIC model, for example C(virtio) or C(e1000e).
        type: str
  node_selector:
    description: C(spec.template.spec.nodeSelector).
    type: dict
  tolerations:
    description: C(spec.template.spec.tolerations).
    type: list
    elements: dict
  eviction_strategy:
    description: C(spec.template.spec.evictionStrategy).
    type: str
    choices: [None, LiveMigrate, LiveMigrateIfPossible, External]
  vms:
    description:
      - Declare many VMs in one task. Each item takes the per-VM options (O(name), O(generate_name), O(namespace),
        O(state), O(definition), O(labels), O(annotations), O(instancetype), O(preference), O(data_volume_templates),
        O(spec), O(running), O(run_strategy), O(cpu), O(memory), O(boot_disk), O(cloud_init), O(networks),
        O(node_selector), O(tolerations), O(eviction_strategy)); the top-level values of these options are shared
        defaults. An item's value replaces the default, except O(labels), O(annotations) and O(node_selector),
        which are merged key by key.
      - The module reads each namespace with one list request, writes only the VMs that need a change (one request
        each, up to eight of them at the same time) and waits for all of them under one deadline.
      - A VM that fails (for example rejected by the API) is reported in RV(results) with its name and the reason;
        the other VMs are still applied and reported, and the task fails.
    type: list
    elements: dict
    suboptions:
      name:
        description: See O(name).
        type: str
      generate_name:
        description: See O(generate_name).
        type: str
      namespace:
        description: See O(namespace).
        type: str
      state:
        description: See O(state); defaults to the top-level O(state).
        type: str
        choices: [present, absent, started, stopped, restarted, restart, paused]
      definition:
        description: See O(definition).
        type: dict
        aliases: [resource_definition]
      labels:
        description: See O(labels).
        type: dict
      annotations:
        description: See O(annotations).
        type: dict
      instancetype:
        description: See O(instancetype).
        type: dict
      preference:
        description: See O(preference).
        type: dict
      data_volume_templates:
        description: See O(data_volume_templates).
        type: list
        elements: dict
      spec:
        description: See O(spec).
        type: dict
      running:
        description: See O(running).
        type: bool
      run_strategy:
        description: See O(run_strategy).
        type: str
        choices: [Always, Halted, Manual, RerunOnFailure, Once]
      cpu:
        description: See O(cpu).
        type: dict
        suboptions:
          cores:
            description: See O(cpu.cores).
            type: int
          sockets:
            description: See O(cpu.sockets).
            type: int
          threads:
            description: See O(cpu.threads).
            type: int
          model:
            description: See O(cpu.model).
            type: str
      memory:
        description: See O(memory).
        type: str
      boot_disk:
        description: See O(boot_disk).
        type: dict
        suboptions:
          container_image:
            description: See O(boot_disk.container_image).
            type: str
          url:
            description: See O(boot_disk.url).
            type: str
          registry:
            description: See O(boot_disk.registry).
            type: str
          clone_from:
            description: See O(boot_disk.clone_from).
            type: dict
            suboptions:
              name:
                description: See O(boot_disk.clone_from.name).
                type: str
                required: true
              namespace:
                description: See O(boot_disk.clone_from.namespace).
                type: str
          pvc:
            description: See O(boot_disk.pvc).
            type: str
          size:
            description: See O(boot_disk.size).
            type: str
          storage_class:
            description: See O(boot_disk.storage_class).
            type: str
          access_modes:
            description: See O(boot_disk.access_modes).
            type: list
            elements: str
          bus:
            description: See O(boot_disk.bus).
            type: str
      cloud_init:
        description: See O(cloud_init).
        type: dict
        suboptions:
          user_data:
            description: See O(cloud_init.user_data).
            type: str
          network_data:
            description: See O(cloud_init.network_data).
            type: str
          user:
            description: See O(cloud_init.user).
            type: str
          password:
            description: See O(cloud_init.password).
            type: str
          ssh_authorized_keys:
            description: See O(cloud_init.ssh_authorized_keys).
            type: list
            elements: str
      networks:
        description: See O(networks).
        type: list
        elements: dict
        suboptions:
          name:
            description: See O(networks[].name).
            type: str
            required: true
          multus:
            description: See O(networks[].multus).
            type: str
          binding:
            description: See O(networks[].binding).
            type: str
            choices: [masquerade, bridge]
          mac_address:
            description: See O(networks[].mac_address).
            type: str
          model:
            description: See O(networks[].model).
            type: str
      node_selector:
        description: See O(node_selector).
        type: dict
      tolerations:
        description: See O(tolerations).
        type: list
        elements: dict
      eviction_strategy:
        description: See O(eviction_strategy).
        type: str
        choices: [None, LiveMigrate, LiveMigrateIfPossible, External]
  wait:
    description:
      - Whether to wait until every VM reaches the state the task asks for (see O(state)).
      - All VMs of the task are waited for together, through one watch on the API server, under a single
        deadline of O(wait_timeout) seconds.
    type: bool
    default: false
  full_ownership:
    description:
      - Fields this module set before and the task no longer gives are removed from the VM.
      - The task then owns the whole declaration, for fleets described in one file. Each write is a server-side
        apply with the field manager C(virtfleet.kubevirt) (C(force=true) on conflicts), and the module stores the
        annotation C(virtfleet.kubevirt/applied-digest) to see, without a request, that an option was dropped.
        Fields that other tools, webhooks and controllers set (MAC addresses, firmware UUID, machine type) stay.
      - Off by default, when only the fields a task gives are written (see the description).
      - A task on an existing VM that gives no body (no O(spec), O(definition), O(instancetype), O(preference),
        O(data_volume_templates) or convenience option such as O(memory)), for example O(state=stopped) with
        O(run_strategy), writes only what it gives, as without this option. A VM without its template is not valid.
      - Mutually exclusive with O(force).
    type: bool
    default: false
  force:
    description:
      - With O(state=present) or a lifecycle state, replace an existing VM with the declaration (an HTTP C(PUT)), as
        O(force) of C(kubevirt.core) does. Every field the declaration does not give is removed, also labels,
        annotations and fields set by other tools; the VM's run strategy is kept when the task gives none.
      - The replace carries the C(resourceVersion) read, so a VM changed in between is read again (the API server
        refuses a replace of a custom resource without one). A replace that changes nothing reports no change.
      - Mutually exclusive with O(full_ownership).
    type: bool
    default: false
  restart_if_required:
    description:
      - When a running VM's new spec only takes effect after a restart (condition C(RestartRequired)), restart it.
      - Without this the result reports RV(restart_required) and the VM keeps running with its old spec.
      - Not with O(state=paused), where a restart would unpause the VM; RV(restart_required) is reported.
    type: bool
    default: false
  grace_period_seconds:
    description:
      - Grace period in seconds of a stop (O(state=stopped)) or a restart (O(state=restarted), also with
        O(restart_if_required)), sent to the C(stop) or C(restart) subresource.
      - For a restart KubeVirt only accepts V(0) (restart immediately) or none (the VM's default).
    type: int
  delete_options:
    description:
      - How to delete, with O(state=absent).
    type: dict
    suboptions:
      propagationPolicy:
        description: How dependents (the VMI, DataVolumes) are deleted.
        type: str
        choices: [Foreground, Background, Orphan]
      preconditions:
        description: Delete only when the object still matches.
        type: dict
        suboptions:
          resourceVersion:
            description: Expected resource version.
            type: str
          uid:
            description: Expected uid.
            type: str
  hidden_fields:
    description:
      - Fields removed from the returned objects and the diff, and ignored when comparing, for example
        C(metadata.managedFields) or C(metadata.annotations[kubemacpool.io/transaction-timestamp]).
    type: list
    elements: str
    default: ['metadata.annotations[kubemacpool.io/transaction-timestamp]', metadata.managedFields]
attributes:
  idempotent:
    support: partial
    details: O(state=restarted) restarts the VM on every run and always reports a change; every other state (also
      O(state=paused)) is idempotent.
extends_documentation_fragment:
  - virtfleet.kubevirt._auth
  - virtfleet.kubevirt._wait
  - virtfleet.kubevirt._attributes
  - virtfleet.kubevirt._attributes.write_module
requirements:
  - python >= 3.9
  - kubernetes >= 28.1.0
notes:
  - Check mode sends every write as a server-side dry run (C(dryRun=All)), so admission webhooks and validation run
    and RV(diff) shows what the server would store. Start, stop, restart, pause and unpause are predicted from the
    current state of the VM and its C(VirtualMachineInstance) (no request), and report a change only when the real
    run would act.
  - "Request budget with O(state=paused) (and O(state=started) on paused VMs): one list of VMs and one of
    C(VirtualMachineInstances) per namespace (one GET each for a single VM), one C(PUT) of the C(pause) (C(unpause))
    subresource per VM that is not yet paused (unpaused), none on a re-run; with O(wait), one list and at most one
    watch of C(VirtualMachineInstances) and of VMs per namespace."
  - When a spec change of a running VM needs a restart, RV(restart_required) is true. With O(wait) the module first
    waits until the controller has seen the change and reports its C(RestartRequired) condition; without O(wait)
    the value is predicted (the VMI template changed while the VM runs).
  - "Cloud-init user data is treated as secret, since it routinely holds passwords and keys. O(cloud_init.user_data)
    and O(cloud_init.password) are not logged; C(userData)/C(userDataBase64) given inside O(spec), O(definition) or
    O(vms) are masked in all output too; and every C(userData) read back from a VM (results, RV(diff) before and
    after) is replaced by C(<hidden: cloud-init user data, sha256:...>), whose digest still shows a change. The data
    itself is stored in the VM spec, readable by whoever may read the VM; for secrets that only some may read, put
    the user data in a Secret and refer to it with C(userDataSecretRef) (the module never reads Secrets)."
  - Credentials in a O(kubeconfig) given as a dictionary (tokens, client key data, auth-provider secrets) and a
    password in a O(proxy) URL are masked in all output as well. O(validate_certs=false) (or
    C(insecure-skip-tls-verify) in the kubeconfig) prints a warning.
'''

EXAMPLES = r'''
- name: A Fedora VM from a container disk, with cloud-init, started and waited for
  virtfleet.kubevirt.kubevirt_vm:
    name: web1
    namespace: vms
    cpu: {cores: 2}
    memory: 2Gi
    boot_disk:
      container_image: quay.io/containerdisks/fedora:latest
    cloud_init:
      user: fedora
      ssh_authorized_keys: ["{{ lookup('file', '~/.ssh/id_ed25519.pub') }}"]
    state: started
    wait: true

- name: kubevirt.core style, unchanged (runStrategy Always instead of spec.running)
  virtfleet.kubevirt.kubevirt_vm:
    name: testvm
    namespace: default
    instancetype: {name: u1.medium}
    preference: {name: fedora}
    spec:
      domain:
        devices: {}
      volumes:
        - name: containerdisk
          containerDisk: {image: quay.io/containerdisks/fedora:latest}

- name: One hundred VMs in one task, waited for together
  virtfleet.kubevirt.kubevirt_vm:
    namespace: fleet
    labels: {app: fleet}
    memory: 1Gi
    boot_disk:
      container_image: quay.io/containerdisks/fedora:latest
    vms: "{{ fleet }}"    # [{name: vm-000}, {name: vm-001, memory: 4Gi}, ...]
    wait: true
    wait_timeout: 600

- name: A VM booting from an imported DataVolume on a Multus bridge network
  virtfleet.kubevirt.kubevirt_vm:
    name: db1
    namespace: vms
    boot_disk:
      registry: quay.io/containerdisks/centos-stream:9
      size: 20Gi
      storage_class: fast
    networks:
      - name: default
      - name: storage
        multus: vms/storage-net
    eviction_strategy: LiveMigrate

- name: Apply a spec change and restart the VM when KubeVirt says it needs it
  virtfleet.kubevirt.kubevirt_vm:
    name: web1
    namespace: vms
    memory: 4Gi
    restart_if_required: true
    wait: true

- name: Stop a VM
  virtfleet.kubevirt.kubevirt_vm:
    name: web1
    namespace: vms
    state: stopped
    wait: true

- name: Two VMs in namespaces that are created when they do not exist yet
  virtfleet.kubevirt.kubevirt_vm:
    create_namespace: true
    memory: 1Gi
    boot_disk:
      container_image: quay.io/containerdisks/fedora:latest
    vms:
      - {name: web1, namespace: team-a}
      - {name: web2, namespace: team-b}
  register: declared    # declared.namespaces_created: the namespaces this run created

- name: Pause the web tier's VMs (one pause request per running VM, none for those already paused)
  virtfleet.kubevirt.kubevirt_vm:
    namespace: vms
    vms:
      - {name: web1}
      - {name: web2}
    state: paused
    wait: true

- name: Let them run again (unpause)
  virtfleet.kubevirt.kubevirt_vm:
    namespace: vms
    vms: [{name: web1}, {name: web2}]
    state: started
    wait: true

- name: Delete a VM
  virtfleet.kubevirt.kubevirt_vm:
    name: web1
    namespace: vms
    state: absent
    wait: true
'''

RETURN = r'''
changed:
  description: Whether any VM was changed (or would be, in check mode).
  returned: always
  type: bool
method:
  description: What was done to the VM on the API (C(create), C(update) or C(delete)); without O(vms).
  returned: success, without O(vms)
  type: str
  sample: create
action:
  description:
    - The lifecycle subresource called (or predicted in check mode), C(start), C(stop) or C(restart) of the VM, or
      C(pause) or C(unpause) of its C(VirtualMachineInstance).
  returned: when one was needed, without O(vms)
  type: str
  sample: start
result:
  description:
    - The VM as the API returned it (after the wait, when waiting), without O(hidden_fields).
    - With O(state=absent), the VM as the API server answered the delete (with C(deletionTimestamp) while
      finalizers hold it), as in C(kubevirt.core); empty when the VM did not exist.
  returned: success, without O(vms)
  type: dict
diff:
  description:
    - The VM before and after (per VM name with O(vms)), without O(hidden_fields).
    - With O(create_namespace), a namespace created by the task shows up as the entry C(Namespace <name>)
      (with O(vms)) or in C(after_header) (without).
  returned: in diff mode
  type: dict
namespaces_created:
  description:
    - Namespaces that the task created (in check mode, would create) because of O(create_namespace).
  returned: always
  type: list
  elements: str
  sample: [team-a]
duration:
  description: Seconds the task took, waiting included.
  returned: always
  type: float
  sample: 4.2
outcome:
  description:
    - What happened to the VM, C(created), C(updated), C(unchanged), C(deleted), C(absent) (already gone) or
      C(failed); without O(vms).
  returned: always, without O(vms)
  type: str
  sample: created
api_retries:
  description:
    - How many API requests the task sent again after a fault (429, 5xx, dropped connection, a create whose
      answer was lost). See the retry policy in the collection's README.
  returned: always
  type: int
  sample: 0
restart_required:
  description:
    - Without O(vms), whether the running VM needs a restart to run its new spec.
    - With O(vms), the C(namespace/name) of every such VM.
  returned: always
  type: raw
  sample: false
results:
  description: One entry per O(vms) item, in order.
  returned: with O(vms)
  type: list
  elements: dict
  contains:
    name:
      description: Name of the VM.
      type: str
    namespace:
      description: Namespace of the VM.
      type: str
    changed:
      description: Whether this VM changed.
      type: bool
    method:
      description: C(create), C(update) or C(delete).
      type: str
    outcome:
      description:
        - What happened to this VM, C(created), C(updated), C(unchanged), C(deleted), C(absent) (already gone)
          or C(failed). A failed task lists every VM by outcome in its message.
      type: str
    action:
      description: C(start), C(stop), C(restart), C(pause) or C(unpause), when called.
      type: str
    result:
      description: The VM object.
      type: dict
    diff:
      description: Before and after, in diff mode.
      type: dict
    restart_required:
      description: Whether the running VM needs a restart to run its new spec.
      type: bool
    failed:
      description: True when this VM failed.
      type: bool
    msg:
      description: Why this VM failed.
      type: str
'''

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _args
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _vm_spec as vs
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._api import Api
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._compare import DEFAULT_HIDDEN_FIELDS
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._module import KubeVirtModule, run_with_client
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._vm_apply import run_task


def argument_spec():
    spec = _args.argument_spec(_args.AUTH_ARG_SPEC, _args.WAIT_ARG_SPEC, **vs.vm_option_spec())
    spec.update(
        api_version=dict(type="str", default=vs.DEFAULT_API_VERSION),
        create_namespace=dict(type="bool", default=False),
        state=dict(type="str", default="present", choices=vs.STATES),
        vms=dict(type="list", elements="dict", options=vs.vm_option_spec(for_item=True),
                 mutually_exclusive=vs.vm_option_rules()),
        wait=dict(type="bool", default=False),
        full_ownership=dict(type="bool", default=False),
        force=dict(type="bool", default=False),
        restart_if_required=dict(type="bool", default=False),
        grace_period_seconds=dict(type="int"),
        delete_options=dict(type="dict", options=dict(
            propagationPolicy=dict(type="str", choices=["Foreground", "Background", "Orphan"]),
            preconditions=dict(type="dict", options=dict(
                resourceVersion=dict(type="str"),
                uid=dict(type="str"),
            )),
        )),
        hidden_fields=dict(type="list", elements="str", default=list(DEFAULT_HIDDEN_FIELDS)),
    )
    return spec


def main():
    module = KubeVirtModule(
        argument_spec=argument_spec(),
        mutually_exclusive=vs.vm_option_rules() + [["vms", "name"], ["vms", "generate_name"], ["full_ownership", "force"]],
        required_one_of=[["name", "generate_name", "vms", "definition"]],
        supports_check_mode=True,
        sensitive=vs.sensitive_values,
    )
    failed, result = run_with_client(
        module, lambda client: run_task(Api(client), module.params, check_mode=module.check_mode, diff_mode=module._diff),
        validate=vs.check_task)
    result = vs.redact_user_data(result)
    if failed:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
