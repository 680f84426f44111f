#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# Dual-licensed: Apache License 2.0 (see LICENSE) or, at your option,
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: kubevirt_vm_snapshot_info
short_description: List the KubeVirt VirtualMachineSnapshots of VMs
version_added: 1.1.0
author:
  - virtfleet.kubevirt contributors (@virtfleet)
description:
  - Lists C(VirtualMachineSnapshots) (C(snapshot.kubevirt.io/v1beta1)) of the VMs selected by O(names) or
    O(label_selectors), and/or by the snapshot name part O(snapshot) and the snapshots' own labels
    (O(snapshot_label_selectors)). Without any of them, every snapshot of the namespace (or of all namespaces).
  - Returns one entry per snapshot with the same fields as M(virtfleet.kubevirt.kubevirt_vm_snapshot)'s results,
    newest first per VM, and the raw objects.
options:
  names:
    description:
      - Names of the VMs whose snapshots are listed (also VMs deleted since, as the snapshots' C(spec.source) is what
        counts). Needs O(namespace).
    type: list
    elements: str
    aliases: [name]
  namespace:
    description:
      - Namespace of the VMs and snapshots. Without it, all namespaces.
    type: str
  label_selectors:
    description:
      - Label selectors of the VMs whose snapshots are listed (costs one list of VMs).
    type: list
    elements: str
    default: []
  snapshot:
    description:
      - Only the snapshots named C(<VM name>-<snapshot>), as M(virtfleet.kubevirt.kubevirt_vm_snapshot) names them.
    type: str
  snapshot_label_selectors:
    description:
      - Label selectors of the snapshots themselves, for example C(app.kubernetes.io/managed-by=virtfleet.kubevirt)
        (those M(virtfleet.kubevirt.kubevirt_vm_snapshot) made) or C(virtfleet.kubevirt/vm=db-1).
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - virtfleet.kubevirt._auth
  - virtfleet.kubevirt._attributes
  - virtfleet.kubevirt._attributes.info_module
requirements:
  - python >= 3.9
  - kubernetes >= 28.1.0
notes:
  - "Request budget: one list of C(VirtualMachineSnapshots) (of O(namespace), or of all namespaces); one list of VMs
    only with O(label_selectors); one list of C(VirtualMachineSnapshotContents) only when a snapshot found has a
    content (for RV(snapshots[].size)). No write."
seealso:
  - module: virtfleet.kubevirt.kubevirt_vm_snapshot
'''

EXAMPLES = r'''
- name: The snapshots of two VMs, newest first
  virtfleet.kubevirt.kubevirt_vm_snapshot_info:
    namespace: prod
    names: [db-1, db-2]
  register: snaps

- name: The newest ready snapshot of db-1
  ansible.builtin.debug:
    msg: "{{ (snaps.snapshots | selectattr('name', 'eq', 'db-1') | selectattr('ready_to_use') | first).snapshot }}"

- name: Every snapshot this collection made, in all namespaces
  virtfleet.kubevirt.kubevirt_vm_snapshot_info:
    snapshot_label_selectors:
      - app.kubernetes.io/managed-by=virtfleet.kubevirt
'''

RETURN = r'''
snapshots:
  description: One entry per snapshot, grouped by VM (in the order of O(names), else by namespace and name), newest
    first per VM.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The VM the snapshot was taken of (C(spec.source.name)).
      type: str
    namespace:
      description: The namespace.
      type: str
    snapshot:
      description: The C(VirtualMachineSnapshot)'s name.
      type: str
    managed:
      description: Made by M(virtfleet.kubevirt.kubevirt_vm_snapshot) (its labels), so its retention may delete it.
      type: bool
    phase:
      description: C(status.phase) (C(InProgress), C(Succeeded), C(Failed), C(Deleting)), or null.
      type: str
    ready_to_use:
      description: C(status.readyToUse).
      type: bool
    failure:
      description: Why the snapshot failed (its C(Failure) condition or phase C(Failed)), or null.
      type: str
    indications:
      description: KubeVirt's indications (C(Online), C(GuestAgent), C(NoGuestAgent), C(Paused)).
      type: list
      elements: str
    online:
      description: The VM was running when the snapshot was taken.
      type: bool
    guest_agent_freeze:
      description: The guest agent froze the file systems for the snapshot (application-consistent).
      type: bool
    size:
      description: Bytes of the snapshotted volumes (sum of the storage requests of the content's claims); 0 without
        volumes; null without a content. See M(virtfleet.kubevirt.kubevirt_vm_snapshot).
      type: int
    included_volumes:
      description: The VM's volumes in the snapshot.
      type: list
      elements: str
    excluded_volumes:
      description: The VM's volumes left out.
      type: list
      elements: str
    error:
      description: C(status.error.message), or null.
      type: str
    creation_time:
      description: C(status.creationTime), or null.
      type: str
    resource:
      description: The C(VirtualMachineSnapshot).
      type: dict
resources:
  description: The C(VirtualMachineSnapshots), in the order of RV(snapshots).
  returned: always
  type: list
  elements: dict
'''

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _args
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _snapshot
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _vm_select
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._api import Api
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._module import KubeVirtModule, run_with_client


def argument_spec():
    spec = _args.argument_spec(_args.AUTH_ARG_SPEC, **_vm_select.selection_spec())
    spec.update(
        snapshot=dict(type="str"),
        snapshot_label_selectors=dict(type="list", elements="str", default=[]),
    )
    return spec


def main():
    module = KubeVirtModule(argument_spec=argument_spec(), supports_check_mode=True)
    result = run_with_client(module, lambda client: _snapshot.run_info(Api(client), module.params),
                             validate=_snapshot.check_info_params)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
