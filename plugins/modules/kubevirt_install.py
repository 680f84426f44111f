#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# Dual-licensed: Apache License 2.0 (see LICENSE) or, at your option,
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: kubevirt_install
short_description: Install, upgrade or uninstall KubeVirt (and CDI) on a Kubernetes cluster
version_added: 1.0.0
author:
  - virtfleet maintainers (@virtfleet)
description:
  - Applies the KubeVirt operator manifest (C(kubevirt-operator.yaml)) and a C(KubeVirt) custom resource built from
    typed options, then waits until KubeVirt is deployed at the requested version. Optionally does the same for the
    Containerized Data Importer (CDI, O(cdi)).
  - "The manifest comes from a release O(version) (the official release asset URL), an explicit O(manifest_url), or
    a local file O(manifest_path) for air-gapped sites. With O(image_registry) the operator image moves to a mirror
    and C(spec.imageRegistry) sends all KubeVirt images there too."
  - An upgrade is a new O(version) (or manifest). The operator Deployment gets the new image, virt-operator rolls the
    components, and the module waits until the observed version is the new one. Downgrades are refused.
  - "O(state=absent) uninstalls in the order the KubeVirt user guide gives: the custom resource first, wait until it
    is gone, then the operator objects in reverse manifest order and the leftovers C(v1.subresources.kubevirt.io),
    C(virt-api-mutator), C(virt-operator-validator), C(virt-api-validator). When the live resource has
    C(uninstallStrategy: BlockUninstallIfWorkloadsExist) and VMs, VMIs or VMI replica sets exist, the task fails,
    lists them and changes nothing."
  - Every object is read once and written (server-side apply, field manager C(virtfleet.kubevirt)) only when the live
    object does not already hold what the module would apply, so a re-run sends no write request.
options:
  state:
    description:
      - V(present) installs or upgrades to the requested version; V(absent) uninstalls.
    type: str
    choices: [present, absent]
    default: present
  name:
    description: Name of the C(KubeVirt) resource.
    type: str
    default: kubevirt
  namespace:
    description:
      - Namespace of KubeVirt when uninstalling without a manifest source. With a manifest the namespace is the one of
        the operator Deployment in it (C(kubevirt) in the release manifests).
    type: str
    default: kubevirt
  version:
    description:
      - KubeVirt release to install, for example V(v1.9.0) (a leading C(v) is added when missing).
      - Without O(manifest_url) and O(manifest_path) the manifest is downloaded from
        C(https://github.com/kubevirt/kubevirt/releases/download/<version>/kubevirt-operator.yaml).
      - With a manifest source it must match the version that manifest deploys; leave it unset to use that version.
    type: str
  manifest_url:
    description: URL of a C(kubevirt-operator.yaml) to use instead of the release asset, for example an internal mirror.
    type: str
  manifest_path:
    description:
      - Path of a C(kubevirt-operator.yaml) on the host that runs the task (air-gapped installs).
    type: path
  manifest_validate_certs:
    description: Whether to verify TLS certificates when downloading a manifest.
    type: bool
    default: true
  image_registry:
    description:
      - Registry (with path) that mirrors the KubeVirt images, for example V(registry.example.com:5000/kubevirt).
      - Sets C(spec.imageRegistry) and rewrites the operator Deployment's image and its C(*_IMAGE) environment
        variables that point at the release registry.
      - CDI uses it too unless O(cdi.image_registry) is set.
    type: str
  image_pull_secrets:
    description:
      - Names of image pull secrets in the KubeVirt namespace for a mirror that needs credentials.
      - Added to the operator pod and set as C(spec.imagePullSecrets); CDI uses them unless O(cdi.image_pull_secrets)
        is set. The module warns when a secret does not exist.
    type: list
    elements: str
  image_pull_policy:
    description: C(spec.imagePullPolicy) for the KubeVirt infrastructure pods.
    type: str
    choices: [Always, IfNotPresent, Never]
  feature_gates:
    description:
      - Feature gates to enable (C(spec.configuration.developerConfiguration.featureGates)). Alpha gates are off unless
        listed here.
    type: list
    elements: str
  disabled_feature_gates:
    description:
      - Feature gates to disable (C(disabledFeatureGates)), for example Beta gates that are on by default. A gate may
        not be in both lists.
    type: list
    elements: str
  emulation:
    description:
      - Software emulation (C(useEmulation)) lets VMs run with QEMU TCG on nodes without C(/dev/kvm).
      - V(true) or V(false) set it.
      - "V(auto) looks at the nodes that may run VMs (Ready, schedulable and matching
        O(workloads_node_placement.node_selector)). A node's KVM is known from O(kvm_nodes), else from its allocatable
        C(devices.kubevirt.io/kvm) (published by virt-handler; C(0) means no KVM). If any such node is known to lack KVM,
        emulation is turned on. If all of them are known to have KVM it is turned off. Otherwise (some unknown, none
        known to lack KVM) the live value is kept (off for a new install) and the module warns."
      - The decision and its reason are returned in RV(emulation).
    type: raw
    default: auto
  kvm_nodes:
    description:
      - KVM usability per Kubernetes node name, for O(emulation=auto), for example the C(kvm_host_usable) facts the
        M(virtfleet.kubevirt.kvm_host_info) module and the C(virtfleet.kubevirt.kvm_host) role leave.
    type: dict
  infra_node_placement:
    description: Node placement of virt-api and virt-controller (C(spec.infra.nodePlacement)).
    type: dict
    suboptions: &placement
      node_selector:
        description: Node labels the pods require.
        type: dict
        aliases: [nodeSelector]
      affinity:
        description: A Kubernetes C(affinity) object.
        type: dict
      tolerations:
        description: A list of Kubernetes tolerations.
        type: list
        elements: dict
  infra_replicas:
    description: Replicas of virt-api and virt-controller (C(spec.infra.replicas)).
    type: int
  workloads_node_placement:
    description:
      - Node placement of virt-handler (C(spec.workloads.nodePlacement)), hence which nodes can run VMs.
    type: dict
    suboptions: *placement
  workload_update_methods:
    description:
      - How running VMIs move to the new virt-launcher after an upgrade (C(spec.workloadUpdateStrategy)). Empty means
        they are not updated automatically.
    type: list
    elements: str
    choices: [LiveMigrate, Evict]
  uninstall_strategy:
    description:
      - C(spec.uninstallStrategy). With V(BlockUninstallIfWorkloadsExist) an uninstall is refused while VMs exist.
      - An uninstall checks the strategy of the live resource, not this option.
    type: str
    choices: [RemoveWorkloads, BlockUninstallIfWorkloadsExist]
  configuration:
    description:
      - Passthrough merged into C(spec.configuration) under the typed options (typed options win), for example
        C(migrations), C(network), C(permittedHostDevices) or C(vmRolloutStrategy).
    type: dict
  spec:
    description:
      - Passthrough merged into C(spec) under everything else, for example C(certificateRotateStrategy) or
        C(customizeComponents).
    type: dict
  cdi:
    description:
      - Manage the Containerized Data Importer too. Without it CDI is left alone.
    type: dict
    suboptions:
      state:
        description: V(present) installs or upgrades CDI, V(absent) uninstalls it. Defaults to O(state).
        type: str
        choices: [present, absent]
      version:
        description:
          - CDI release, for example V(v1.66.0); without a manifest source it resolves to
            C(https://github.com/kubevirt/containerized-data-importer/releases/download/<version>/cdi-operator.yaml).
        type: str
      manifest_url:
        description: URL of a C(cdi-operator.yaml).
        type: str
      manifest_path:
        description: Path of a C(cdi-operator.yaml) on the host that runs the task.
        type: path
      image_registry:
        description: Mirror registry for the CDI images; defaults to O(image_registry).
        type: str
      image_pull_secrets:
        description: Pull secrets (in the CDI namespace) for the mirror; defaults to O(image_pull_secrets).
        type: list
        elements: str
      image_pull_policy:
        description: C(spec.imagePullPolicy) of the CDI pods.
        type: str
        choices: [Always, IfNotPresent, Never]
      feature_gates:
        description: CDI feature gates (C(spec.config.featureGates)); the release CR enables C(HonorWaitForFirstConsumer).
        type: list
        elements: str
        default: [HonorWaitForFirstConsumer]
      scratch_storage_class:
        description: Storage class for scratch space during imports (C(spec.config.scratchSpaceStorageClass)).
        type: str
      upload_proxy_url:
        description: Public URL of the upload proxy (C(spec.config.uploadProxyURLOverride)), used by C(virtctl image-upload).
        type: str
      upload_proxy_replicas:
        description: Replicas of the upload proxy (C(spec.infra.uploadProxyReplicas)).
        type: int
      infra_node_placement:
        description: Node placement of the CDI control plane (C(spec.infra)).
        type: dict
        suboptions: *placement
      workload_node_placement:
        description: Node placement of importer/uploader pods (C(spec.workload)).
        type: dict
        suboptions: *placement
      uninstall_strategy:
        description: C(spec.uninstallStrategy); V(BlockUninstallIfWorkloadsExist) refuses an uninstall while DataVolumes exist.
        type: str
        choices: [RemoveWorkloads, BlockUninstallIfWorkloadsExist]
      config:
        description: Passthrough merged into C(spec.config) under the typed options.
        type: dict
      spec:
        description: Passthrough merged into C(spec) under everything else.
        type: dict
  supported_kubernetes:
    description:
      - The Kubernetes minors the KubeVirt release supports, as C(min) and C(max) (for example V(1.34) and V(1.36)).
      - By default the module knows them for KubeVirt 1.8 and 1.9 (the three latest Kubernetes minors at release time)
        and warns when the cluster runs another version.
    type: dict
    suboptions:
      min:
        description: Oldest supported Kubernetes minor.
        type: str
      max:
        description: Newest supported Kubernetes minor.
        type: str
  preflight_only:
    description:
      - Only read the cluster and return RV(cluster) (Kubernetes version, supported range, schedulable nodes); change
        nothing. Fails when the API is unreachable or no Ready, schedulable node may run VMs. The C(kubevirt) role
        runs this before installing.
      - The version comes from O(version), else from the manifest source.
    type: bool
    default: false
  wait:
    description:
      - Wait until each custom resource reports phase C(Deployed), C(Available=True), C(Progressing=False),
        C(Degraded=False) and an observed version equal to the target version.
      - An uninstall always waits until the custom resource is gone before it deletes the operator (the safe order),
        whatever this option says.
      - One watch per resource under a single deadline of O(wait_timeout) seconds for the whole task.
      - On timeout the task fails with the phase, the conditions and which Deployments/DaemonSets are not ready.
    type: bool
    default: true
  wait_timeout:
    description: Seconds the whole task may wait, for all resources together.
    type: int
    default: 600
extends_documentation_fragment:
  - virtfleet.kubevirt._auth
  - virtfleet.kubevirt._attributes
  - virtfleet.kubevirt._attributes.write_module
notes:
  - Check mode asks the API server for a dry run of every write (C(dryRun=All)); objects whose namespace or CRD
    would only be created by the run are predicted instead. Nothing is waited for in check mode.
  - In diff mode the module returns the before/after state of every object it would change.
  - The operator, not this module, creates the other KubeVirt CRDs and components; the module only waits for them.
seealso:
  - name: KubeVirt installation
    description: The KubeVirt user guide on installing, updating and deleting KubeVirt.
    link: https://kubevirt.io/user-guide/cluster_admin/installation/
  - name: Air-gapped installs with virtfleet.kubevirt
    description: Mirroring the images and installing from local files (docs/air-gapped-install.md in the collection).
    link: https://github.com/virtfleet/kubevirt/blob/main/docs/air-gapped-install.md
'''

EXAMPLES = r'''
- name: Install KubeVirt v1.9.0 with CDI v1.66.0
  virtfleet.kubevirt.kubevirt_install:
    version: v1.9.0
    cdi:
      version: v1.66.0

- name: Air-gapped install from local manifests and a mirror registry
  virtfleet.kubevirt.kubevirt_install:
    manifest_path: /srv/kubevirt/v1.9.0/kubevirt-operator.yaml
    image_registry: registry.example.com:5000/kubevirt
    image_pull_secrets: [mirror-pull]
    cdi:
      manifest_path: /srv/kubevirt/cdi-v1.66.0/cdi-operator.yaml

- name: Configure KubeVirt (feature gates, placement, update and uninstall strategies)
  virtfleet.kubevirt.kubevirt_install:
    version: v1.9.0
    feature_gates: [HostDevices, Snapshot]
    disabled_feature_gates: [PasstBinding]
    emulation: auto
    infra_node_placement:
      node_selector:
        node-role.kubernetes.io/control-plane: ""
    workloads_node_placement:
      node_selector:
        virtfleet.io/vm-host: "true"
    workload_update_methods: [LiveMigrate, Evict]
    uninstall_strategy: BlockUninstallIfWorkloadsExist
    configuration:
      vmRolloutStrategy: LiveUpdate

- name: Upgrade to the next release
  virtfleet.kubevirt.kubevirt_install:
    version: v1.9.1
    wait_timeout: 1800

- name: Uninstall KubeVirt and CDI
  virtfleet.kubevirt.kubevirt_install:
    state: absent
    cdi: {}
'''

RETURN = r'''
kubevirt:
  description: The C(KubeVirt) resource after the task (after the wait), or its dry-run/predicted state in check mode.
  returned: when state is present
  type: dict
  sample: {"kind": "KubeVirt", "metadata": {"name": "kubevirt", "namespace": "kubevirt"},
           "status": {"phase": "Deployed", "observedKubeVirtVersion": "v1.9.0"}}
cdi:
  description: The C(CDI) resource after the task.
  returned: when O(cdi) is given with state present
  type: dict
kubevirt_version:
  description: The KubeVirt version the task installed or upgraded to.
  returned: when state is present
  type: str
  sample: v1.9.0
kubevirt_previous_version:
  description: The observed KubeVirt version before the task (null when KubeVirt was not installed).
  returned: always
  type: str
  sample: v1.8.4
kubevirt_manifest:
  description: Where the operator manifest was read from (URL or path).
  returned: when state is present
  type: str
cdi_version:
  description: The CDI version the task installed or upgraded to.
  returned: when O(cdi) is given with state present
  type: str
cdi_previous_version:
  description: The observed CDI version before the task.
  returned: when O(cdi) is given
  type: str
cdi_manifest:
  description: Where the CDI operator manifest was read from.
  returned: when O(cdi) is given with state present
  type: str
emulation:
  description: The C(useEmulation) decision, its mode and reason, and per node whether KVM is usable (null = unknown).
  returned: when state is present
  type: dict
  sample: {"mode": "auto", "enabled": true, "reason": "nodes that may run VMs lack KVM: node02 (kvm_nodes)",
           "nodes": {"node01": true, "node02": false}}
objects:
  description: Every object the task looked at and what happened to it.
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "Deployment", "name": "virt-operator", "namespace": "kubevirt", "action": "updated"}]
transitions:
  description:
    - Per component (C(kubevirt), C(cdi)), the distinct states the resource went through during the wait (phase,
      conditions, target and observed version), for example an upgrade's C(UpdateInProgress).
  returned: when the task waited
  type: dict
cluster:
  description: Preflight facts about the cluster.
  returned: when state is present, and with O(preflight_only)
  type: dict
  sample: {"kubernetes_version": "v1.34.0", "nodes": 2, "schedulable_nodes": ["node01", "node02"],
           "kubevirt_version": "v1.9.0", "kubernetes_supported": {"min": "1.34", "max": "1.36"}}
pending:
  description: When the wait timed out, the resource that was not ready and its state.
  returned: failure
  type: list
  elements: dict
components:
  description: When the wait timed out, the Deployments and DaemonSets of the operator namespace and whether they are ready.
  returned: failure
  type: list
  elements: dict
workloads:
  description: When an uninstall was refused, the workloads that block it.
  returned: failure
  type: list
  elements: str
'''

import copy

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _api, _install, _install_preflight
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._args import AUTH_ARG_SPEC, argument_spec
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._module import KubeVirtModule, run_with_client

PULL_POLICIES = ['Always', 'IfNotPresent', 'Never']
STRATEGIES = ['RemoveWorkloads', 'BlockUninstallIfWorkloadsExist']
PLACEMENT = {
    'type': 'dict',
    'options': {
        'node_selector': {'type': 'dict', 'aliases': ['nodeSelector']},
        'affinity': {'type': 'dict'},
        'tolerations': {'type': 'list', 'elements': 'dict'},
    },
}

INSTALL_ARG_SPEC = {
    'state': {'type': 'str', 'choices': ['present', 'absent'], 'default': 'present'},
    'name': {'type': 'str', 'default': 'kubevirt'},
    'namespace': {'type': 'str', 'default': 'kubevirt'},
    'version': {'type': 'str'},
    'manifest_url': {'type': 'str'},
    'manifest_path': {'type': 'path'},
    'manifest_validate_certs': {'type': 'bool', 'default': True},
    'image_registry': {'type': 'str'},
    'image_pull_secrets': {'type': 'list', 'elements': 'str', 'no_log': False},
    'image_pull_policy': {'type': 'str', 'choices': PULL_POLICIES},
    'feature_gates': {'type': 'list', 'elements': 'str'},
    'disabled_feature_gates': {'type': 'list', 'elements': 'str'},
    'emulation': {'type': 'raw', 'default': 'auto'},
    'kvm_nodes': {'type': 'dict'},
    'infra_node_placement': copy.deepcopy(PLACEMENT),
    'infra_replicas': {'type': 'int'},
    'workloads_node_placement': copy.deepcopy(PLACEMENT),
    'workload_update_methods': {'type': 'list', 'elements': 'str', 'choices': ['LiveMigrate', 'Evict']},
    'uninstall_strategy': {'type': 'str', 'choices': STRATEGIES},
    'configuration': {'type': 'dict'},
    'spec': {'type': 'dict'},
    'cdi': {
        'type': 'dict',
        'options': {
            'state': {'type': 'str', 'choices': ['present', 'absent']},
            'version': {'type': 'str'},
            'manifest_url': {'type': 'str'},
            'manifest_path': {'type': 'path'},
            'image_registry': {'type': 'str'},
            'image_pull_secrets': {'type': 'list', 'elements': 'str', 'no_log': False},
            'image_pull_policy': {'type': 'str', 'choices': PULL_POLICIES},
            'feature_gates': {'type': 'list', 'elements': 'str', 'default': ['HonorWaitForFirstConsumer']},
            'scratch_storage_class': {'type': 'str'},
            'upload_proxy_url': {'type': 'str'},
            'upload_proxy_replicas': {'type': 'int'},
            'infra_node_placement': copy.deepcopy(PLACEMENT),
            'workload_node_placement': copy.deepcopy(PLACEMENT),
            'uninstall_strategy': {'type': 'str', 'choices': STRATEGIES},
            'config': {'type': 'dict'},
            'spec': {'type': 'dict'},
        },
        'mutually_exclusive': [['manifest_url', 'manifest_path']],
    },
    'supported_kubernetes': {'type': 'dict', 'options': {'min': {'type': 'str'}, 'max': {'type': 'str'}}},
    'preflight_only': {'type': 'bool', 'default': False},
    'wait': {'type': 'bool', 'default': True},
    'wait_timeout': {'type': 'int', 'default': 600},
}


def main():
    module = KubeVirtModule(
        argument_spec=argument_spec(AUTH_ARG_SPEC, INSTALL_ARG_SPEC),
        mutually_exclusive=[['manifest_url', 'manifest_path']],
        supports_check_mode=True,
    )

    def install(client):
        return _install.Installer(_api.Api(client), module.params, check_mode=module.check_mode,
                                  diff_mode=module._diff, warn=module.warn).run()

    result = run_with_client(module, install, validate=_install_preflight.check_params)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
