# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The edge every Kubernetes module shares: library check, client from the connection options, one error translation."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _client
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._args import auth_options
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import KubeVirtError


def run_with_client(module, work):
    """Return ``work(client)``; a missing kubernetes library or a KubeVirtError ends the module with fail_json."""
    if _client.IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib('kubernetes'), exception=str(_client.IMPORT_ERROR))
    error = None
    try:
        return work(_client.client_from_options(auth_options(module.params)))
    except KubeVirtError as exc:
        error = exc
    # Outside the except block: the sentence is the whole report, no exception context attached.
    module.fail_json(msg=error.msg, **error.result)
    return None  # not reached: fail_json exits
