#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# Dual-licensed: Apache License 2.0 (see LICENSE) or, at your option,
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: kubevirt_vmi_info
short_description: Describe KubeVirt VirtualMachineInstances
version_added: 1.0.0
author:
  - virtfleet maintainers (@virtfleet)
description:
  - Reads KubeVirt C(VirtualMachineInstances) (the running instances of VMs) by name, namespace, label selectors
    and field selectors, and returns them as the API server sends them.
  - Option- and return-compatible with C(kubevirt.core.kubevirt_vmi_info).
  - Reading one C(VirtualMachineInstance) by O(name) and O(namespace) costs exactly one API request.
  - With O(wait=true), waits until every matched C(VirtualMachineInstance) has the C(Ready) condition C(True)
    (which KubeVirt sets once the instance is in phase C(Running) and its guest is up). All of them are watched
    through one watch request under one deadline, O(wait_timeout).
options:
  api_version:
    description:
      - The API version of KubeVirt.
    type: str
    default: kubevirt.io/v1
  name:
    description:
      - Name of the C(VirtualMachineInstance).
      - Without O(namespace), the instances of that name in all namespaces are returned.
      - With O(wait=true), an instance that does not exist yet (a VM that was just started) is waited for too.
    type: str
  namespace:
    description:
      - Namespace of the C(VirtualMachineInstances). Without it, all namespaces are searched.
    type: str
  label_selectors:
    description:
      - List of label selectors to filter the results, for example C(kubevirt.io/domain=vm1).
    type: list
    elements: str
    default: []
  field_selectors:
    description:
      - List of field selectors to filter the results, for example C(metadata.name=vm1).
    type: list
    elements: str
    default: []
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
  - module: virtfleet.kubevirt.kubevirt_vm_info
'''

EXAMPLES = r'''
- name: Get an existing VirtualMachineInstance
  virtfleet.kubevirt.kubevirt_vmi_info:
    name: testvm
    namespace: default
  register: testvmi

- name: Get all VirtualMachineInstances of a namespace
  virtfleet.kubevirt.kubevirt_vmi_info:
    namespace: default
  register: vmi_list

- name: Get all VirtualMachineInstances in any namespace
  virtfleet.kubevirt.kubevirt_vmi_info:
  register: all_vmis

- name: Search for VirtualMachineInstances labelled app=test
  virtfleet.kubevirt.kubevirt_vmi_info:
    label_selectors:
      - app=test

- name: Wait until the VirtualMachineInstance is ready, then print its IP address
  virtfleet.kubevirt.kubevirt_vmi_info:
    name: testvm
    namespace: default
    wait: true
  register: testvmi

- name: Show the address
  ansible.builtin.debug:
    msg: "{{ testvmi.resources[0].status.interfaces[0].ipAddress }}"
'''

RETURN = r'''
api_found:
  description:
    - Whether the API server serves C(VirtualMachineInstances) in O(api_version). V(false) means KubeVirt is not
      installed or O(api_version) is wrong.
  returned: always
  type: bool
  sample: true
resources:
  description:
    - The C(VirtualMachineInstances) found (after the wait, in their final state).
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
      sample: VirtualMachineInstance
    metadata:
      description: Standard object metadata. Includes name, namespace, annotations, labels, etc.
      returned: success
      type: dict
    spec:
      description: Specific attributes of the C(VirtualMachineInstance).
      returned: success
      type: dict
    status:
      description: Current status of the C(VirtualMachineInstance), including phase, nodeName and interfaces.
      returned: success
      type: dict
pending:
  description:
    - When a wait timed out, the objects that did not become ready and their current state.
  returned: failure
  type: list
  elements: dict
  sample: [{"namespace": "default", "name": "vm1", "state": "phase Scheduling, Ready=False"}]
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
        argument_spec=argument_spec(AUTH_ARG_SPEC, INFO_ARG_SPEC, WAIT_ARG_SPEC),
        supports_check_mode=True,
    )
    result = run_with_client(
        module, lambda client: _info.run_info(client, _kinds.VMI, module.params, predicate=_info.vmi_ready, goal='ready'),
        validate=check_info_params)
    module.exit_json(**redact_user_data(result))


if __name__ == '__main__':
    main()
