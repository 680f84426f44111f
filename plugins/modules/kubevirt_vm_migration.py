#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# Dual-licensed: Apache License 2.0 (see LICENSE) or, at your option,
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: kubevirt_vm_migration
short_description: Live-migrate many KubeVirt VMs at once, or cancel their migrations
version_added: 1.1.0
author:
  - virtfleet.kubevirt contributors (@virtfleet)
description:
  - Live-migrates running VMs (their C(VirtualMachineInstances), VMIs) to other nodes by creating one
    C(VirtualMachineInstanceMigration) (VMIM) per VMI, or (O(state=absent)) cancels the migrations in flight of the
    selected VMIs, which makes KubeVirt abort them; the VMIs then stay on their nodes.
  - The VMIs are selected by O(names), O(label_selectors), or O(node) (every VMI running on that node, for example to
    drain it before maintenance). A VMI has its VM's name.
  - Before anything is written, the module finds the VMIs KubeVirt cannot live-migrate (their C(LiveMigratable)
    condition is C(False), because of a bridge binding on the pod network, a volume whose claim is not
    C(ReadWriteMany), host devices or GPUs, ...). What happens to them is O(non_migratable).
  - A VMI that already has a migration in flight keeps it; the module waits for that one (RV(results[].reused)) and
    creates no second one (KubeVirt would refuse it).
  - Migrations this module creates are named C(<vmi>-migration-<random>) (C(generateName)), so earlier migrations of
    the same VMI never get in the way; they carry the label C(app.kubernetes.io/managed-by=virtfleet.kubevirt).
  - One VMI's failure (a migration that failed or timed out, a VMI that does not exist, an API error) does not stop the
    others; the task then fails and lists every VMI by outcome.
options:
  names:
    description:
      - Names of the VMIs (the names of their VMs) to migrate. Needs O(namespace).
      - A name without a VMI (the VM is stopped, or does not exist) is reported (outcome C(failed)) and fails the task
        after the other VMIs were handled; with O(state=absent) it is not an error (outcome C(unchanged)).
      - With O(label_selectors) or O(node) too, only the named VMIs that also match them are selected.
    type: list
    elements: str
    aliases: [name]
  namespace:
    description:
      - Namespace of the VMIs. Without it, O(label_selectors) and O(node) select VMIs in all namespaces (one
        cluster-wide list).
    type: str
  label_selectors:
    description:
      - Label selectors of the VMIs, for example C(app=web). VMIs carry their VM template's labels.
    type: list
    elements: str
    default: []
  node:
    description:
      - Select every VMI on this node (the label C(kubevirt.io/nodeName) virt-controller sets), in all namespaces
        unless O(namespace) is given.
      - One of O(names), O(label_selectors) and O(node) is required; a task never migrates every VMI by accident.
    type: str
  state:
    description:
      - V(present) migrates the selected VMIs; V(absent) cancels (deletes) their migrations in flight (a VMI with none
        in flight has the outcome C(unchanged)).
    type: str
    choices: [present, absent]
    default: present
  target_node_selector:
    description:
      - Node labels the target node must have, on top of the VMI's own node selector (the migration's
        C(spec.addedNodeSelector)), for example C(kubernetes.io/hostname=node07) or C(rack=r2) written as a dictionary.
      - KubeVirt never picks the source node, a cordoned node (C(spec.unschedulable)) or a node that is not Ready.
        When no node fits, the migration stays C(Scheduling) until KubeVirt gives up (C(Failed), after 5 minutes by
        default); with O(wait), the VMI fails after O(wait_timeout) saying no node could take it.
      - Only with O(state=present).
    type: dict
  non_migratable:
    description:
      - What to do with the selected VMIs that KubeVirt cannot live-migrate (C(LiveMigratable=False)).
      - V(fail) (the default) fails the task before any write, naming every such VMI with KubeVirt's reason
        (RV(non_migratable)); no migration is created.
      - V(skip) migrates the others and reports these as C(skipped).
      - V(stop) stops their VMs (the VM C(stop) subresource; the VM's run strategy becomes C(Halted)) and migrates
        the others; with O(wait), until their VMIs are gone. Start them again with M(virtfleet.kubevirt.kubevirt_vm)
        O(virtfleet.kubevirt.kubevirt_vm#module:state=started) after the maintenance.
    type: str
    choices: [fail, skip, stop]
    default: fail
  wait:
    description:
      - Wait until every migration is C(Succeeded) or C(Failed) (and, with O(state=absent), gone; with
        O(non_migratable=stop), the stopped VMs' VMIs gone), through one watch of the migrations (and one of the VMIs),
        all under one deadline of O(wait_timeout) seconds. A failed migration fails its VMI with KubeVirt's reason.
      - Without it, new migrations are reported as C(pending). Check mode never waits.
    type: bool
    default: false
extends_documentation_fragment:
  - virtfleet.kubevirt._auth
  - virtfleet.kubevirt._wait
  - virtfleet.kubevirt._attributes
  - virtfleet.kubevirt._attributes.write_module
attributes:
  idempotent:
    support: partial
    details:
      - With O(node), a second run finds no VMI left on the node and changes nothing.
      - With O(names) or O(label_selectors), every run migrates the selected VMIs again (a migration is an action,
        not a state), except a VMI whose migration is still in flight, which is reused.
      - O(state=absent) is idempotent.
requirements:
  - python >= 3.9
  - kubernetes >= 28.1.0
notes:
  - Needs live migration in the cluster (KubeVirt's default) and, for VMs with persistent volumes, C(ReadWriteMany)
    claims; the VMs' pod network interface should use C(masquerade) (the bridge binding is not migratable).
  - Check mode sends every migration create and cancel as a server-side dry run (C(dryRun=All)), so KubeVirt's
    admission webhook still checks each migration; stops are predicted from the VMIs read. Nothing is waited for.
  - Diff mode reports, per VMI (C(namespace/name)), the node before and after (C((another node)) when the target is
    not known yet, without O(wait) or in check mode), C(running) for stopped VMs, and C(migration) for cancelled ones.
  - "Request budget: one list of VMIs (the selection; one namespace, or cluster-wide without O(namespace)) and one list
    of migrations of the same scope; one POST per VMI migrated (none for a VMI whose migration is in flight), one PUT
    C(stop) per VM stopped, one DELETE per migration cancelled. O(wait) adds one watch of migrations started from
    the list's resourceVersion (and one watch of VMIs when VMs were stopped), reopened only when the server ends it,
    and one GET per migrated VMI only if the finished migration lacks C(status.migrationState) (KubeVirt before
    v1.6). Migrating 50 VMIs off a node with O(wait) costs 53 requests (2 lists, 50 POSTs, 1 watch); with
    O(non_migratable=fail) and a non-migratable VMI among them, 2 requests and no write."
seealso:
  - module: virtfleet.kubevirt.kubevirt_vm
  - module: virtfleet.kubevirt.kubevirt_vmi_info
  - name: KubeVirt live migration
    description: Requirements, limitations and the migration configuration.
    link: https://kubevirt.io/user-guide/compute/live_migration/
'''

EXAMPLES = r'''
- name: Drain node07 - migrate every VMI away, fail before anything moves if one cannot
  virtfleet.kubevirt.kubevirt_vm_migration:
    node: node07
    wait: true
    wait_timeout: 900
  register: drain

- name: Where did they go
  ansible.builtin.debug:
    msg: "{{ drain.results | items2dict(key_name='name', value_name='target_node') }}"

- name: Drain node07, stopping the VMs that cannot move
  virtfleet.kubevirt.kubevirt_vm_migration:
    node: node07
    non_migratable: stop
    wait: true
    wait_timeout: 900

- name: Move two VMs to a node of rack r2
  virtfleet.kubevirt.kubevirt_vm_migration:
    namespace: prod
    names: [db-1, db-2]
    target_node_selector:
      topology.kubernetes.io/zone: r2
    wait: true

- name: Cancel the migrations in flight of the web tier
  virtfleet.kubevirt.kubevirt_vm_migration:
    namespace: prod
    label_selectors:
      - tier=web
    state: absent
    wait: true
'''

RETURN = r'''
results:
  description: One entry per selected VMI (and per name without a VMI), in the selection's order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The VMI's (and its VM's) name.
      type: str
      sample: db-1
    namespace:
      description: The VMI's namespace.
      type: str
    outcome:
      description:
        - V(migrated) (with O(wait), the migration succeeded), V(pending) (created or reused, not waited for; always so
          in check mode), V(skipped) (not migratable, O(non_migratable=skip)), V(stopped) (not migratable, its VM
          stopped), V(cancelled) (O(state=absent), its migration deleted), V(unchanged) (O(state=absent) with no
          migration in flight, or nothing was written because another VMI was not migratable) or V(failed) (see
          RV(results[].msg)).
      type: str
      sample: migrated
    changed:
      description: Whether a migration was created or cancelled, or the VM stopped, for this VMI.
      type: bool
    failed:
      description: Whether this VMI failed.
      type: bool
    msg:
      description: Why this VMI failed.
      type: str
      returned: when failed
    migration:
      description: The name of the C(VirtualMachineInstanceMigration) (created, reused or cancelled), or null.
      type: str
      sample: db-1-migration-x7k2p
    phase:
      description: The migration's C(status.phase) as last seen (C(Pending), C(Scheduling), ..., C(Succeeded),
        C(Failed)), or null.
      type: str
    reused:
      description: The VMI had a migration in flight, which was waited for instead of creating another.
      type: bool
    source_node:
      description: The node the VMI ran on before the migration.
      type: str
      sample: node07
    target_node:
      description: The node KubeVirt migrated the VMI to (C(migrationState.targetNode)), or null when not known yet.
      type: str
      sample: node03
    duration:
      description: Seconds the migration took, from the VMI's C(migrationState.startTimestamp) to C(endTimestamp);
        null unless V(migrated).
      type: float
      sample: 12.0
    reason:
      description: Why KubeVirt cannot live-migrate the VMI (C(<reason>) colon C(<message>) of its C(LiveMigratable)
        condition), or why its migration failed; null otherwise.
      type: str
      sample: "InterfaceNotLiveMigratable: cannot migrate VMI which does not use masquerade or a migratable plugin to
        connect to the pod network"
non_migratable:
  description: The selected VMIs KubeVirt cannot live-migrate (without a migration in flight), with the reason.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The VMI's name.
      type: str
    namespace:
      description: The VMI's namespace.
      type: str
    reason:
      description: "The C(reason) and C(message) of its C(LiveMigratable) condition, as C(<reason>: <message>)."
      type: str
changed:
  description: Whether any migration was created or cancelled, or any VM stopped.
  returned: always
  type: bool
duration:
  description: Seconds the task took, the wait included.
  returned: always
  type: float
api_retries:
  description: How many API requests were retried (429, 5xx, dropped connections).
  returned: always
  type: int
diff:
  description: Per changed VMI (C(namespace/name)), its node before and after (see the notes).
  returned: in diff mode
  type: dict
msg:
  description: On failure, the VMIs that could not be migrated, or every VMI by outcome with the failures' reasons.
  returned: failure
  type: str
'''

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _args
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _migration
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _vm_select
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._api import Api
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._module import KubeVirtModule, run_with_client


def argument_spec():
    spec = _args.argument_spec(_args.AUTH_ARG_SPEC, _args.WAIT_ARG_SPEC, **_vm_select.selection_spec(node=True))
    spec.update(
        state=dict(type="str", default="present", choices=["present", "absent"]),
        target_node_selector=dict(type="dict"),
        non_migratable=dict(type="str", default="fail", choices=list(_migration.NON_MIGRATABLE_CHOICES)),
        wait=dict(type="bool", default=False),
    )
    return spec


def main():
    module = KubeVirtModule(argument_spec=argument_spec(), supports_check_mode=True)
    failed, result = run_with_client(
        module, lambda client: _migration.run_task(Api(client), module.params, check_mode=module.check_mode,
                                                   diff_mode=module._diff),
        validate=_migration.check_params)
    if failed:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
