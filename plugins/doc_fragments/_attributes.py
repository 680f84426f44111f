# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Every module talking to the API: membership of the module_defaults group (meta/runtime.yml).
    DOCUMENTATION = r'''
options: {}
attributes:
  action_group:
    description: Use C(group/virtfleet.kubevirt.kubevirt) in C(module_defaults) to set connection options once.
    support: full
    membership:
      - virtfleet.kubevirt.kubevirt
'''

    # Read-only modules.
    INFO_MODULE = r'''
options: {}
attributes:
  check_mode:
    description: Can run in check_mode and return the same result as without it.
    support: full
    details: The module only reads, so check mode changes nothing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: N/A
    details: The module never changes anything.
  idempotent:
    description: Running the task twice gives the same result when nothing else changed the cluster.
    support: full
'''

    # Modules that write: true check mode (server-side dry run) and diff. A module that is idempotent only in part
    # (kubevirt_vm, state=restarted) overrides attributes.idempotent.support/details in its own DOCUMENTATION:
    # its keys win over the fragment's.
    WRITE_MODULE = r'''
options: {}
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
  idempotent:
    description: A second run with the same options reports no change and sends no write request.
    support: full
'''
