# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The edge every Kubernetes module shares: input validation, library check, client from the connection options,
one error translation."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _client
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._args import (
    INSECURE_WARNING, InvalidOption, auth_options, connection_secrets, insecure,
)
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import KubeVirtError


def run_with_client(module, work, validate=None, sensitive=None):
    """Return ``work(client)``; a missing kubernetes library or a KubeVirtError ends the module with fail_json.

    ``sensitive(params)`` returns more strings to mask in all output (beyond no_log options and connection secrets).
    ``validate(params)`` runs next and may raise InvalidOption: bad input fails before any request is sent.
    """
    # Before anything can fail: every later message, result and invocation echo is masked for these.
    module.no_log_values.update(connection_secrets(module.params))
    if sensitive is not None:
        module.no_log_values.update(sensitive(module.params))
    error = None
    if validate is not None:
        try:
            validate(module.params)
        except InvalidOption as exc:
            error = str(exc)
        if error is not None:
            module.fail_json(msg=error)
    if _client.IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib('kubernetes'), exception=str(_client.IMPORT_ERROR))
    try:
        client = _client.client_from_options(auth_options(module.params))
        if insecure(client):
            module.warn(INSECURE_WARNING)
        return work(client)
    except KubeVirtError as exc:
        error = exc
    # Outside the except block: the sentence is the whole report, no exception context attached.
    module.fail_json(msg=error.msg, **error.result)
    return None  # not reached: fail_json exits
