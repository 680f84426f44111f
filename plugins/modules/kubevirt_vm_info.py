#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# Dual-licensed: Apache License 2.0 (see LICENSE) or, at your option,
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: kubevirt_vm_info
short_description: Describe KubeVirt VirtualMachines
version_added: 1.0.0
author:
  - virtfleet maintainers (@virtfleet)
description:
  - Reads KubeVirt C(VirtualMachines) by name, namespace, label selectors and field selectors, and returns them as
    the API server sends them.
  - Option- and return-compatible with C(kubevirt.core.kubevirt_vm_info).
  - Reading one C(VirtualMachine) by O(name) and O(namespace) costs exactly one API request; there is no API
    discovery.
  - With O(wait=true), waits until every matched C(VirtualMachine) is ready (or stopped, see O(running)). All of
    them are watched through one watch request under one deadline, O(wait_timeout).
options:
  api_version:
    description:
      - The API version of KubeVirt.
    type: str
    default: kubevirt.io/v1
  name:
    description:
      - Name of the C(VirtualMachine).
      - Without O(namespace), the C(VirtualMachines) of that name in all namespaces are returned.
      - With O(wait=true), a C(VirtualMachine) that does not exist yet is waited for too.
    type: str
  namespace:
    description:
      - Namespace of the C(VirtualMachines). Without it, all namespaces are searched.
    type: str
  label_selectors:
    description:
      - List of label selectors to filter the results, for example C(app=web) or C(tier in (db,cache)).
    type: list
    elements: str
    default: []
  field_selectors:
    description:
      - List of field selectors to filter the results, for example C(metadata.name=vm1).
    type: list
    elements: str
    default: []
  running:
    description:
      - Which state O(wait=true) waits for.
      - V(true) (or not set) waits for the C(Ready) condition to be C(True).
      - V(false) waits for the C(VirtualMachine) to be stopped, that is its C(Ready) condition is C(False) with
        reason C(VMINotExists) or its C(printableStatus) is C(Stopped).
      - Requires O(wait) to be set.
    type: bool
  hidden_fields:
    description:
      - Fields removed from each returned object, in the syntax C(a.b[key.with.dots]) or C(a.list[0]).
    type: list
    elements: str
    default: ['metadata.annotations[kubemacpool.io/transaction-timestamp]', 'metadata.managedFields']
extends_documentation_fragment:
  - virtfleet.kubevirt._auth
  - virtfleet.kubevirt._wait
  - virtfleet.kubevirt._attributes
  - virtfleet.kubevirt._attributes.info_module
notes:
  - "Cloud-init C(userData)/C(userDataBase64) in the returned objects is replaced by
    C(<hidden: cloud-init user data, sha256:...>), since it routinely holds passwords and keys."
seealso:
  - module: virtfleet.kubevirt.kubevirt_vmi_info
'''

EXAMPLES = r'''
- name: Get an existing VirtualMachine
  virtfleet.kubevirt.kubevirt_vm_info:
    name: testvm
    namespace: default
  register: testvm

- name: Get all VirtualMachines of a namespace
  virtfleet.kubevirt.kubevirt_vm_info:
    namespace: default
  register: vm_list

- name: Get all VirtualMachines in any namespace
  virtfleet.kubevirt.kubevirt_vm_info:
  register: all_vms

- name: Search for VirtualMachines labelled app=test
  virtfleet.kubevirt.kubevirt_vm_info:
    label_selectors:
      - app=test

- name: Wait until the VirtualMachine is running
  virtfleet.kubevirt.kubevirt_vm_info:
    name: testvm
    namespace: default
    wait: true

- name: Wait until the VirtualMachine is stopped
  virtfleet.kubevirt.kubevirt_vm_info:
    name: testvm
    namespace: default
    running: false
    wait: true

- name: Wait for all 50 VMs of a fleet at once, connection options set once for the group
  module_defaults:
    group/virtfleet.kubevirt.kubevirt:
      kubeconfig: /etc/ansible/kubeconfig
      context: prod
  virtfleet.kubevirt.kubevirt_vm_info:
    namespace: fleet
    label_selectors:
      - app=web
    wait: true
    wait_timeout: 600
'''

RETURN = r'''
api_found:
  description:
    - Whether the API server serves C(VirtualMachines) in O(api_version). V(false) means KubeVirt is not installed
      or O(api_version) is wrong.
  returned: always
  type: bool
  sample: true
resources:
  description:
    - The C(VirtualMachines) found (after the wait, in their final state), sorted as the API server lists them.
  returned: success
  type: list
  elements: dict
  contains:
    apiVersion:
      description: The versioned schema of this representation of an object.
      returned: success
      type: str
      sample: kubevirt.io/v1
    kind:
      description: Represents the REST resource this object represents.
      returned: success
      type: str
      sample: VirtualMachine
    metadata:
      description: Standard object metadata. Includes name, namespace, annotations, labels, etc.
      returned: success
      type: dict
    spec:
      description: Specific attributes of the C(VirtualMachine).
      returned: success
      type: dict
    status:
      description: Current status details for the C(VirtualMachine).
      returned: success
      type: dict
pending:
  description:
    - When a wait timed out, the objects that did not reach the state and their current state.
  returned: failure
  type: list
  elements: dict
  sample: [{"namespace": "default", "name": "vm1", "state": "printableStatus Starting, Ready=False"}]
'''

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _info, _kinds
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._args import (
    AUTH_ARG_SPEC,
    INFO_ARG_SPEC,
    check_info_params,
    WAIT_ARG_SPEC,
    argument_spec,
)
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._module import KubeVirtModule, run_with_client
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._vm_spec import redact_user_data


def main():
    module = KubeVirtModule(
        argument_spec=argument_spec(AUTH_ARG_SPEC, INFO_ARG_SPEC, WAIT_ARG_SPEC, running={'type': 'bool'}),
        required_by={'running': 'wait'},
        supports_check_mode=True,
    )
    predicate, goal = _info.vm_goal(module.params['running'])
    result = run_with_client(
        module, lambda client: _info.run_info(client, _kinds.VM, module.params, predicate=predicate, goal=goal),
        validate=check_info_params)
    module.exit_json(**redact_user_data(result))


if __name__ == '__main__':
    main()
