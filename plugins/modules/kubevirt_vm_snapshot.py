#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# Dual-licensed: Apache License 2.0 (see LICENSE) or, at your option,
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: kubevirt_vm_snapshot
short_description: Take or remove KubeVirt VirtualMachineSnapshots of many VMs in one task
version_added: 1.1.0
author:
  - virtfleet.kubevirt contributors (@virtfleet)
description:
  - Takes (O(state=present)) or removes (O(state=absent)) a C(VirtualMachineSnapshot) (C(snapshot.kubevirt.io/v1beta1))
    of every VM selected by O(names) or O(label_selectors).
  - The snapshot of VM C(vm1) is named C(vm1-<snapshot>) (O(snapshot)). A snapshot of that name that exists for that
    VM is left as it is (outcome C(unchanged), no write), so a re-run changes nothing.
  - Snapshots this module creates carry the labels C(app.kubernetes.io/managed-by=virtfleet.kubevirt) and
    C(virtfleet.kubevirt/vm=<VM name>) plus O(labels). With O(keep), only those count for retention; a snapshot made by
    hand or by another tool is never deleted by retention.
  - A running VM is snapshotted online by KubeVirt, with no downtime. RV(results[].online) tells whether it was running
    (indication C(Online)); RV(results[].guest_agent_freeze) tells whether the QEMU guest agent was connected, so
    KubeVirt froze the guest's file systems for the snapshot (indication C(GuestAgent)); such a snapshot is
    application-consistent. An online snapshot without the agent (C(NoGuestAgent)) or of a paused VM (C(Paused)) is
    crash-consistent, like pulling the power cord. A stopped VM (offline, no indication) gives a consistent snapshot.
  - Only persistent volumes (PVCs and DataVolumes) are snapshotted, through their storage class's C(VolumeSnapshotClass);
    container disks, cloud-init and other volumes are listed in RV(results[].excluded_volumes).
  - One VM's failure (its snapshot failed, a VM that does not exist, an API error) does not stop the others; the task
    then fails and lists every VM by outcome.
options:
  names:
    description:
      - Names of the C(VirtualMachines) to snapshot. Needs O(namespace).
      - A name that does not exist is reported (outcome C(failed)) and fails the task after the other VMs were handled.
        With O(state=absent) it is not an error; the snapshot named after it is removed if it exists.
      - With O(label_selectors) too, only the named VMs that also match them are selected.
    type: list
    elements: str
    aliases: [name]
  namespace:
    description:
      - Namespace of the VMs. Without it, O(label_selectors) select VMs in all namespaces (one cluster-wide list).
    type: str
  label_selectors:
    description:
      - Label selectors of the VMs to snapshot, for example C(app=web) or C(tier in (db,cache)).
      - One of O(names) and O(label_selectors) is required; a task never snapshots every VM by accident.
    type: list
    elements: str
    default: []
  snapshot:
    description:
      - The snapshot's name part. The C(VirtualMachineSnapshot) of VM C(vm1) is named C(vm1-<snapshot>), so every VM of
        the task gets one of the same name part, such as C(nightly-2026-12-05) or C(before-upgrade).
      - Lowercase letters, digits, C(-) and C(.); the whole name must be at most 253 characters and the VM name at most
        63 (it is a label value). This is checked before any request.
    type: str
    required: true
  state:
    description:
      - V(present) takes the snapshots that do not exist yet; V(absent) deletes them.
    type: str
    choices: [present, absent]
    default: present
  labels:
    description:
      - More labels for the snapshots this module creates. They cannot replace the two labels the module sets.
      - Not written to snapshots that exist already.
    type: dict
  failure_deadline:
    description:
      - How long KubeVirt may take for the snapshot before it fails it (C(spec.failureDeadline)), as a duration such as
        V(5m) or V(1h30m); V(0s) means no deadline. Without it, KubeVirt's default applies (5 minutes).
    type: str
  deletion_policy:
    description:
      - C(spec.deletionPolicy). V(Delete) (KubeVirt's default) deletes the snapshot's content (and its volume
        snapshots) with the snapshot; V(Retain) keeps the C(VirtualMachineSnapshotContent) and the volume snapshots
        when the snapshot is deleted (also by retention or O(state=absent)).
    type: str
    choices: [Delete, Retain]
  keep:
    description:
      - Retention. After taking the snapshot, keep the O(keep) newest snapshots of each VM among those this module made
        (both labels above), the new one counted as the newest, and delete the older ones (RV(results[].deleted)).
      - Snapshots made by hand or by another tool are never deleted, and do not count.
      - With O(wait=true), a VM's older snapshots are deleted only once its new snapshot is ready to use; a VM whose
        new snapshot failed keeps all of them. Without O(wait), they are deleted right after the create.
      - In check mode the deletes are server-side dry runs.
    type: int
  wait:
    description:
      - Wait until every snapshot is ready to use (C(status.readyToUse=true)) or failed (phase C(Failed) or a
        C(Failure) condition; that VM then fails with the reason). With O(state=absent), until they are gone.
      - All snapshots are waited for together, through one watch per task, under a single deadline of
        O(wait_timeout) seconds. Check mode never waits.
    type: bool
    default: false
extends_documentation_fragment:
  - virtfleet.kubevirt._auth
  - virtfleet.kubevirt._wait
  - virtfleet.kubevirt._attributes
  - virtfleet.kubevirt._attributes.write_module
requirements:
  - python >= 3.9
  - kubernetes >= 28.1.0
notes:
  - Needs KubeVirt's C(Snapshot) feature gate and, for VMs with persistent volumes, a C(VolumeSnapshotClass) for their
    storage class.
  - Check mode sends every create and delete as a server-side dry run (C(dryRun=All)), so validation and admission
    run; nothing is stored and nothing is waited for.
  - "Request budget of a task (O(namespace) given, or cluster-wide without it): one list of VMs (the selection) and one
    list of C(VirtualMachineSnapshots); one POST per snapshot created and one DELETE per snapshot deleted (retention or
    O(state=absent)), no write on a re-run; O(wait) adds one watch of C(VirtualMachineSnapshots) started from the
    snapshot list's resourceVersion (a second list only when the server answers 410 Gone); one list of
    C(VirtualMachineSnapshotContents) when a reported snapshot has a content (for RV(results[].size)). Measured on the
    test emulator, 50 VMs with O(wait) cost 54 requests (1 + 1 + 50 POSTs + 1 watch + 1), 104 with O(keep=1) deleting
    50 older snapshots, and 3 (no write) on a re-run."
seealso:
  - module: virtfleet.kubevirt.kubevirt_vm_snapshot_info
  - name: KubeVirt snapshot and restore API
    description: Snapshots, indications, failure deadline and deletion policy.
    link: https://kubevirt.io/user-guide/storage/snapshot_restore_api/
'''

EXAMPLES = r'''
- name: Snapshot every VM of the web tier, keep the last 7 of them per VM
  virtfleet.kubevirt.kubevirt_vm_snapshot:
    namespace: prod
    label_selectors:
      - tier=web
    snapshot: "nightly-{{ now(utc=true, fmt='%Y%m%d') }}"
    keep: 7
    wait: true
    wait_timeout: 900
  register: snap

- name: Show which snapshots were application-consistent
  ansible.builtin.debug:
    msg: "{{ snap.results | selectattr('online') | rejectattr('guest_agent_freeze') | map(attribute='name') | list }}"

- name: Snapshot two VMs before an upgrade, failing if KubeVirt needs more than 10 minutes
  virtfleet.kubevirt.kubevirt_vm_snapshot:
    namespace: default
    names: [db-1, db-2]
    snapshot: before-upgrade
    failure_deadline: 10m
    deletion_policy: Retain
    labels:
      change: CHG-1234
    wait: true

- name: Remove those snapshots again
  virtfleet.kubevirt.kubevirt_vm_snapshot:
    namespace: default
    names: [db-1, db-2]
    snapshot: before-upgrade
    state: absent
    wait: true
'''

RETURN = r'''
results:
  description: One entry per selected VM (and per VM name that does not exist), in the selection's order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The VM's name.
      type: str
      sample: db-1
    namespace:
      description: The VM's namespace.
      type: str
    snapshot:
      description: The name of the C(VirtualMachineSnapshot) (C(<VM name>-<snapshot>)).
      type: str
      sample: db-1-before-upgrade
    outcome:
      description:
        - V(created), V(unchanged) (it existed), V(deleted) (O(state=absent); also when it was being deleted already),
          V(absent) (O(state=absent), there was none) or V(failed) (see RV(results[].msg)).
      type: str
      sample: created
    changed:
      description: Whether this VM's snapshot was created or deleted, or retention deleted older ones.
      type: bool
    failed:
      description: Whether this VM failed (its snapshot failed, timed out, the VM does not exist, an API error).
      type: bool
    msg:
      description: Why this VM failed.
      type: str
      returned: when failed
    phase:
      description: The snapshot's C(status.phase) (C(InProgress), C(Succeeded), C(Failed), C(Deleting)); null until the
        controller set it (always so in check mode and without O(wait) for a new snapshot).
      type: str
      sample: Succeeded
    ready_to_use:
      description: C(status.readyToUse).
      type: bool
    indications:
      description: KubeVirt's indications about how the snapshot was taken (C(Online), C(GuestAgent), C(NoGuestAgent),
        C(Paused)); empty for a stopped VM.
      type: list
      elements: str
      sample: [GuestAgent, Online]
    online:
      description: The VM was running when the snapshot was taken (indication C(Online)).
      type: bool
    guest_agent_freeze:
      description: The guest agent was connected, so the guest's file systems were frozen for the snapshot
        (indication C(GuestAgent)).
      type: bool
    size:
      description:
        - Bytes of the snapshotted volumes, the sum of the storage requests of the claims in the snapshot's
          C(VirtualMachineSnapshotContent) (C(spec.volumeBackups)), which is what a restore asks for at least. KubeVirt
          does not report the volume snapshots' C(restoreSize) in its objects, so it is not used.
        - V(0) when no volume was snapshotted (only container disks); null while the snapshot has no content yet (not
          ready, check mode), or when a claim carried no storage request.
      type: int
      sample: 10737418240
    included_volumes:
      description: The VM's volumes in the snapshot (C(status.snapshotVolumes.includedVolumes)).
      type: list
      elements: str
    excluded_volumes:
      description: The VM's volumes left out (container disks, cloud-init, ...).
      type: list
      elements: str
    error:
      description: C(status.error.message), the error KubeVirt reported for the snapshot, or null.
      type: str
    creation_time:
      description: When the snapshot was taken (C(status.creationTime)), or null before it is ready.
      type: str
    deleted:
      description: Names of this VM's older snapshots deleted by retention (O(keep)); in check mode, those that would be.
      type: list
      elements: str
    resource:
      description: The C(VirtualMachineSnapshot) as last seen (after the wait; in check mode, the dry run's answer; for
        V(deleted) without O(wait), the object being deleted), or an empty dictionary (no snapshot, or gone).
      type: dict
    diff:
      description: Before and after of this VM's snapshots (keyed by C(namespace/name)), in diff mode.
      type: dict
      returned: in diff mode
changed:
  description: Whether any snapshot was created or deleted.
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
  description: The snapshots created (after) and deleted (before), keyed by C(namespace/name).
  returned: in diff mode
  type: dict
msg:
  description: On failure, every VM by outcome, failures with their reason.
  returned: failure
  type: str
'''

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _args
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _snapshot
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _vm_select
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._api import Api
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._module import KubeVirtModule, run_with_client


def argument_spec():
    spec = _args.argument_spec(_args.AUTH_ARG_SPEC, _args.WAIT_ARG_SPEC, **_vm_select.selection_spec())
    spec.update(
        snapshot=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        labels=dict(type="dict"),
        failure_deadline=dict(type="str"),
        deletion_policy=dict(type="str", choices=list(_snapshot.DELETION_POLICIES)),
        keep=dict(type="int"),
        wait=dict(type="bool", default=False),
    )
    return spec


def main():
    module = KubeVirtModule(argument_spec=argument_spec(), supports_check_mode=True)
    failed, result = run_with_client(
        module, lambda client: _snapshot.run_task(Api(client), module.params, check_mode=module.check_mode,
                                                  diff_mode=module._diff),
        validate=_snapshot.check_params)
    if failed:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
