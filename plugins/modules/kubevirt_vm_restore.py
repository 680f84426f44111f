#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# Dual-licensed: Apache License 2.0 (see LICENSE) or, at your option,
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: kubevirt_vm_restore
short_description: Restore many KubeVirt VirtualMachines to their snapshots in one task
version_added: 1.1.0
author:
  - virtfleet.kubevirt contributors (@virtfleet)
description:
  - Restores the VMs selected by O(names) or O(label_selectors) to a C(VirtualMachineSnapshot) each, by creating one
    C(VirtualMachineRestore) (C(snapshot.kubevirt.io/v1beta1)) per VM. KubeVirt's restore controller then replaces
    the VM's spec by the snapshot's copy (its disks on claims restored from the volume snapshots) and keeps the VM's
    run strategy.
  - The snapshot is O(snapshot) (the suffix kubevirt_vm_snapshot uses, VM C(vm1)'s snapshot C(daily) is
    C(vm1-daily)), O(snapshot_name) (one exact name, for one VM), or, when both are left out, the newest snapshot
    of each VM that is ready to use. A VM without such a snapshot fails with a message naming it; the other VMs are
    restored all the same.
  - Every check (the snapshot exists, is ready, was taken of this very VM, no other restore of the VM is in
    progress, which VMs run) is made before any write, from a few lists; see the notes for the request budget.
  - A running VM (one that has a C(VirtualMachineInstance)) cannot be restored while it runs; O(when_running)
    says what happens to it.
  - The C(VirtualMachineRestore) objects are named C(<snapshot>-restore-<n>) (the lowest free C(n)) and carry the
    label C(app.kubernetes.io/managed-by=virtfleet.kubevirt). They stay after the task, as KubeVirt's own restores
    do (KubeVirt deletes them with their VM).
  - B(Idempotency.) A VM is reported C(unchanged) and nothing is written for it when its annotation
    C(restore.kubevirt.io/lastRestoreUID) names a complete C(VirtualMachineRestore) of the chosen snapshot (that
    restore still exists) and the VM's spec is still the spec that restore gave it (the snapshot's copy with the
    restored claims and the VM's run strategy, computed the way KubeVirt computes it). So a re-run of the same task
    changes nothing, while a VM that was changed after its restore (memory, disks, anything in its spec) is
    restored again. Labels and annotations of the VM are not part of a restore (KubeVirt keeps the VM's own), so
    changing them does not count. What the guest wrote to its disks since the restore is not seen; use
    O(force=true) to restore regardless.
  - A restore of the chosen snapshot that an earlier run started and KubeVirt still works on is taken over (waited
    for with O(wait)), never created twice. A restore of another snapshot in progress on the VM fails that VM.
    So does a failed restore of the VM (or one being deleted), because KubeVirt's admission webhook refuses a new
    restore of a VM while any restore of it is not complete; the message gives the command that deletes it.
options:
  names:
    description:
      - Names of the VMs to restore, in O(namespace). A name that does not exist fails the task (after the other VMs
        were handled).
    type: list
    elements: str
    aliases: [name]
  namespace:
    description:
      - Namespace of the VMs. Required with O(names); without it O(label_selectors) select across all namespaces.
    type: str
  label_selectors:
    description:
      - Label selectors of the VMs (C(app=web), C(tier in (a,b))), all of which must match.
      - With O(names), a named VM must match them too.
    type: list
    elements: str
    default: []
  snapshot:
    description:
      - The suffix of the snapshots to restore. VM C(vm1) is restored to C(vm1-<snapshot>), the name
        virtfleet.kubevirt.kubevirt_vm_snapshot gives it.
      - Left out (and without O(snapshot_name)), each VM is restored to its newest snapshot that is ready to use
        (newest by creation time).
      - Mutually exclusive with O(snapshot_name).
    type: str
  snapshot_name:
    description:
      - The exact name of one C(VirtualMachineSnapshot); only with exactly one VM in O(names).
      - Mutually exclusive with O(snapshot).
    type: str
  when_running:
    description:
      - What happens to a selected VM that runs (has a C(VirtualMachineInstance)) when the task reads it.
      - V(fail) (the default) reports every running VM and fails the task B(before any write);
        no C(VirtualMachineRestore) is created for any VM, the others are reported as C(skipped). The
        restores are created with C(targetReadinessPolicy=FailImmediate), so a VM started between the task's read
        and KubeVirt's turn fails its restore instead of being stopped.
      - V(stop) has KubeVirt stop the VM (C(targetReadinessPolicy=StopTarget)); its controller calls the VM's
        C(stop) subresource, which sets the run strategy C(Halted) and shuts the VMI down, then restores it. With
        O(restart=true) the task starts the VM again (the VM's C(start) subresource) once its restore is complete.
      - V(wait) creates the restore with C(targetReadinessPolicy=WaitEventually); KubeVirt waits, without a time
        limit, until somebody stops the VM, then restores it. The VM is not started again by the task (whoever
        stopped it decides). With O(wait=true) the task waits for that under O(wait_timeout).
    type: str
    choices: [fail, stop, wait]
    default: fail
  restart:
    description:
      - Start the VMs that the task had KubeVirt stop (O(when_running=stop)) again once their restore is complete.
        The task waits for those restores under O(wait_timeout) even with O(wait=false), because a VM can only be
        started after its restore; with O(wait=true) it also waits until they are C(Ready).
      - VMs that were stopped before the task stay stopped.
    type: bool
    default: true
  force:
    description:
      - Restore even a VM that already holds the chosen snapshot (see the idempotency rule above), for example to
        throw away what the guest wrote to its disks since. The task then always reports a change.
    type: bool
    default: false
  wait:
    description:
      - Wait until every restore is complete (C(status.complete=true)) or failed (a C(Failure) condition, the VM's
        outcome is C(failed) with KubeVirt's message) and the restarted VMs are C(Ready).
      - All VMs are waited for together, one watch per kind and namespace, under a single deadline of
        O(wait_timeout) seconds. Without it the restores are created and reported C(pending).
    type: bool
    default: false
attributes:
  idempotent:
    support: full
    details: A re-run sends no write for a VM that already holds the snapshot and was not changed since (see the
      description). O(force=true) restores on every run.
extends_documentation_fragment:
  - virtfleet.kubevirt._auth
  - virtfleet.kubevirt._wait
  - virtfleet.kubevirt._attributes
  - virtfleet.kubevirt._attributes.write_module
requirements:
  - python >= 3.9
  - kubernetes >= 28.1.0
notes:
  - 'Request budget for N VMs in one namespace: one list of VMs (the selection; cluster-wide without O(namespace)),
    one list each of C(VirtualMachineInstances), C(VirtualMachineSnapshots) and C(VirtualMachineRestores) per
    namespace, one list of C(VirtualMachineSnapshotContents) per namespace only when a VM may already be restored
    (or in diff mode), one C(POST) per VM to restore; with O(wait) (or a restart) one list and one watch of
    C(VirtualMachineRestores) per namespace (another watch when the server ends one), then one list of
    C(VirtualMachines) per namespace to read them back, and, for restarted VMs, one C(start) each and one watch of
    C(VirtualMachines) until they are C(Ready). A re-run that changes nothing costs five lists and no write.
    Measured for 50 stopped VMs restored with wait 57 requests (6 lists, 1 watch, 50 C(POST)); its re-run 5 lists.'
  - Check mode creates the restores as server dry runs (C(dryRun=All)); the stop by KubeVirt and the restart are
    predicted from the VMs' current state.
  - 'Diff mode - C(diff.before) and C(diff.after) are lists with one item per VM restored, C(metadata.name),
    C(metadata.namespace) and C(spec). C(before) is the VM spec read by the task; C(after) is the spec read back
    after the wait, else the spec KubeVirt will write (the snapshot copy, the VM run strategy, the disks on the
    restored claims C(restore-<restore uid>-<volume>); in check mode the uid of the dry run).'
  - KubeVirt's restore controller (C(virt-controller)) and its snapshot API must be installed
    (C(snapshot.kubevirt.io)); restoring disks needs a CSI driver with volume snapshots, as for taking the
    snapshots.
seealso:
  - module: virtfleet.kubevirt.kubevirt_vm
  - name: KubeVirt snapshot and restore API
    description: The VirtualMachineSnapshot and VirtualMachineRestore objects and their target readiness policies.
    link: https://kubevirt.io/user-guide/storage/snapshot_restore_api/
'''

EXAMPLES = r'''
- name: Restore every VM of the app to its snapshot "before-upgrade", stopping the running ones and starting them again
  virtfleet.kubevirt.kubevirt_vm_restore:
    namespace: shop
    label_selectors:
      - app=shop
    snapshot: before-upgrade
    when_running: stop
    wait: true
    wait_timeout: 600

- name: Restore two stopped VMs to their newest ready snapshot
  virtfleet.kubevirt.kubevirt_vm_restore:
    namespace: lab
    names: [vm1, vm2]
    wait: true

- name: Restore one VM to one exact snapshot once somebody stops it
  virtfleet.kubevirt.kubevirt_vm_restore:
    namespace: lab
    name: db
    snapshot_name: db-nightly-20260101
    when_running: wait
'''

RETURN = r'''
changed:
  description: Whether a restore was created (or, in check mode, would be).
  returned: always
  type: bool
results:
  description: One item per selected VM (and per name in O(names) that does not exist), in the selection's order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The VM's name.
      type: str
      returned: always
    namespace:
      description: The VM's namespace.
      type: str
      returned: always
    snapshot:
      description: The C(VirtualMachineSnapshot) chosen for the VM (null when none could be chosen).
      type: str
      returned: always
    restore:
      description: The name of the C(VirtualMachineRestore) created (or taken over); null when none was needed.
      type: str
      returned: always
    outcome:
      description:
        - C(restored) (the restore is complete), C(pending) (created, not waited for), C(unchanged) (the VM
          already holds the snapshot), C(skipped) (nothing was written because other VMs run and
          O(when_running=fail)) or C(failed) (see C(msg)).
      type: str
      returned: always
      sample: restored
    changed:
      description: Whether the task created a restore for this VM.
      type: bool
      returned: always
    failed:
      description: Whether this VM failed.
      type: bool
      returned: always
    stopped:
      description: Whether the VM ran and the task had KubeVirt stop it for the restore (O(when_running=stop)).
      type: bool
      returned: always
    restarted:
      description: Whether the task started the VM again after its restore (predicted in check mode).
      type: bool
      returned: always
    restore_time:
      description: C(status.restoreTime) of the restore, when it is complete and was waited for.
      type: str
      returned: always
    msg:
      description: What happened to the VM, or why it failed.
      type: str
      returned: always
    resource:
      description: The C(VirtualMachine) as last read (after the wait when there was one); null for a missing VM.
      type: dict
      returned: always
duration:
  description: Seconds the task took.
  returned: always
  type: float
api_retries:
  description: How many requests were sent again after a 429, a 5xx or a dropped connection.
  returned: always
  type: int
msg:
  description: Every VM grouped by outcome, and every failure with its reason.
  returned: always
  type: str
diff:
  description: The VM specs before and after (see the notes).
  returned: in diff mode
  type: dict
'''

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _args
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _vm_select
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._api import Api
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._module import KubeVirtModule, run_with_client
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._restore import check_params, run_task


def argument_spec():
    spec = _args.argument_spec(_args.AUTH_ARG_SPEC, _args.WAIT_ARG_SPEC, **_vm_select.selection_spec())
    spec.update(
        snapshot=dict(type="str"),
        snapshot_name=dict(type="str"),
        when_running=dict(type="str", default="fail", choices=["fail", "stop", "wait"]),
        restart=dict(type="bool", default=True),
        force=dict(type="bool", default=False),
        wait=dict(type="bool", default=False),
    )
    return spec


def main():
    module = KubeVirtModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[["snapshot", "snapshot_name"]],
        supports_check_mode=True,
    )
    failed, result = run_with_client(
        module, lambda client: run_task(Api(client), module.params, check_mode=module.check_mode, diff_mode=module._diff),
        validate=check_params)
    if failed:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
