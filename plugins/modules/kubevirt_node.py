#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# Dual-licensed: Apache License 2.0 (see LICENSE) or, at your option,
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: kubevirt_node
short_description: Cordon or uncordon a Kubernetes Node that runs KubeVirt VMs, and wait until it is Ready
version_added: 1.1.0
author:
  - virtfleet.kubevirt contributors (@virtfleet)
description:
  - Marks one Kubernetes C(Node) unschedulable (cordon, O(schedulable=false)) or schedulable again (uncordon,
    O(schedulable=true)), as C(kubectl cordon) and C(kubectl uncordon) do, and waits until the node is C(Ready).
  - Cordoning keeps new VMs (and the targets of live migrations) off the node; VMs running there keep running. Move
    them away with M(virtfleet.kubevirt.kubevirt_vm_migration) (its option C(node)).
    The playbook C(virtfleet.kubevirt.maintain_nodes) and the role C(virtfleet.kubevirt.node_maintenance) do the whole
    roll, node by node.
  - Cordon sends a JSON merge patch C(spec.unschedulable=true); uncordon removes C(spec.unschedulable), and only when
    the node has it set. A node already in the asked state gets no write request and the task reports no change.
  - With O(wait), the task waits until the node's C(Ready) condition is C(True) and, with
    O(require_kubevirt_schedulable), until it carries the label C(kubevirt.io/schedulable=true), which KubeVirt's
    virt-handler sets once it runs on the node (and virt-controller sets to C(false) when virt-handler stops
    reporting). Cordoning does not change that label.
options:
  name:
    description:
      - Name of the C(Node), as C(kubectl get nodes) lists it.
    type: str
    required: true
  schedulable:
    description:
      - V(false) cordons the node, V(true) uncordons it.
      - Not set, the node is left as it is (to wait for it, or to read it).
    type: bool
  require_kubevirt_schedulable:
    description:
      - With O(wait), also wait for the label C(kubevirt.io/schedulable=true) on the node, that is, for KubeVirt's
        virt-handler to run there again (after a reboot, say).
      - Only with O(wait=true).
    type: bool
    default: false
  wait:
    description:
      - Wait until the node is C(Ready) (and KubeVirt-schedulable with O(require_kubevirt_schedulable)), at most
        O(wait_timeout) seconds. A node that does not get there fails the task with its C(Ready) condition's status,
        reason, message and last heartbeat.
      - With O(schedulable=false) the node is cordoned first, then waited for. With O(schedulable=true) the wait comes
        first and the node is uncordoned only once it is ready; a node that does not get ready stays cordoned.
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
  - "Request budget: one GET of the node; one PATCH when it must be cordoned or uncordoned (none when it already is);
    with O(wait) and a node that is not ready yet, one watch of that node (started from the version already read, so
    no list), plus one more for each watch the API server ends before the node is ready. Three requests at most for a
    ready node: GET, PATCH, and no watch."
  - Check mode sends the cordon or uncordon as a server-side dry run (C(dryRun=All)) and does not wait; RV(ready)
    is then the node's readiness as read.
  - RBAC needs C(get), C(watch) and C(patch) on C(nodes) (cluster scope).
  - O(wait_sleep) is accepted for the shared wait options and only bounds the pause before re-opening a watch.
seealso:
  - module: virtfleet.kubevirt.kubevirt_vm_migration
  - name: Safely Drain a Node
    description: How Kubernetes cordons and drains a node for maintenance.
    link: https://kubernetes.io/docs/tasks/administer-cluster/safely-drain-node/
'''

EXAMPLES = r'''
- name: Cordon node01 so no new VM lands there
  virtfleet.kubevirt.kubevirt_node:
    name: node01
    schedulable: false

- name: Uncordon node01 once it is Ready and virt-handler runs on it again (it stays cordoned otherwise)
  virtfleet.kubevirt.kubevirt_node:
    name: node01
    schedulable: true
    wait: true
    require_kubevirt_schedulable: true
    wait_timeout: 600

- name: Only wait for the node after a reboot (it stays cordoned)
  virtfleet.kubevirt.kubevirt_node:
    name: node01
    wait: true
    wait_timeout: 900
  register: node
'''

RETURN = r'''
outcome:
  description:
    - What the task did to the node, C(cordoned), C(uncordoned), C(unchanged), or C(failed) (node missing or not
      ready in time; a cordon or uncordon sent before the wait failed is in RV(cordon_outcome)).
  returned: always
  type: str
  sample: cordoned
cordon_outcome:
  description: When the wait failed, what the task had done to the node before (C(cordoned), C(uncordoned), C(unchanged)).
  returned: when the wait failed
  type: str
  sample: unchanged
node:
  description: The C(Node) as last read (after the write and the wait; in check mode, the server's dry-run answer).
  returned: success, and when the wait failed
  type: dict
ready:
  description: Whether the node's C(Ready) condition is C(True).
  returned: success, and when the wait failed
  type: bool
  sample: true
schedulable:
  description: Whether the node is schedulable (not cordoned).
  returned: success
  type: bool
  sample: false
kubevirt_schedulable:
  description: Whether the node carries the label C(kubevirt.io/schedulable=true).
  returned: success
  type: bool
  sample: true
duration:
  description: Seconds the task took, waiting included.
  returned: success
  type: float
  sample: 0.4
api_retries:
  description: How many API requests the task sent again after a fault (429, 5xx, dropped connection).
  returned: always
  type: int
  sample: 0
diff:
  description: The node's name and C(spec.unschedulable) before and after, in diff mode.
  returned: in diff mode
  type: dict
  sample: {before: {metadata: {name: node01}, spec: {unschedulable: false}},
           after: {metadata: {name: node01}, spec: {unschedulable: true}}}
'''

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _args
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _node
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._api import Api
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._module import KubeVirtModule, run_with_client


def argument_spec():
    spec = _args.argument_spec(_args.AUTH_ARG_SPEC, _args.WAIT_ARG_SPEC, **_node.node_option_spec())
    spec["wait"] = dict(type="bool", default=False)
    return spec


def main():
    module = KubeVirtModule(argument_spec=argument_spec(), supports_check_mode=True)
    result = run_with_client(
        module, lambda client: _node.run_task(Api(client), module.params, check_mode=module.check_mode,
                                              diff_mode=module._diff),
        validate=_node.check_params)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
