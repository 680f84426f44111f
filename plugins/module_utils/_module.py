# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The edge every Kubernetes module shares: input validation, library check, client from the connection options,
one error translation."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _client
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._args import (
    INSECURE_WARNING, InvalidOption, auth_options, connection_secrets, insecure,
)
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import KubeVirtError


class KubeVirtModule(AnsibleModule):
    """AnsibleModule that masks secrets hidden inside options that are not no_log themselves (credentials in a
    kubeconfig dictionary, a proxy URL password, and ``sensitive(params)``, e.g. cloud-init user data in a spec)
    from the moment the options are read, so that even ansible-core's own argument errors, which echo every
    option back as ``invocation``, never show them."""

    def __init__(self, *args, **kwargs):
        self._sensitive = kwargs.pop('sensitive', None)
        super().__init__(*args, **kwargs)

    def _load_params(self):
        super()._load_params()
        params = self.params if isinstance(self.params, dict) else {}
        self.no_log_values.update(connection_secrets(params))
        if self._sensitive is not None:
            self.no_log_values.update(self._sensitive(params))


def run_with_client(module, work, validate=None):
    """Return ``work(client)``; a missing kubernetes library or a KubeVirtError ends the module with fail_json.

    ``validate(params)`` runs first and may raise InvalidOption: bad input fails before any request is sent.
    """
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
        if module.params.get('wait_timeout') and hasattr(client, 'set_deadline'):
            # Retries (and their pauses) never carry a task past its wait_timeout, whatever the module.
            client.set_deadline(module.params['wait_timeout'])
        if insecure(client):
            module.warn(INSECURE_WARNING)
        return work(client)
    except KubeVirtError as exc:
        error = exc
    # The sentence is the report. With -vvv the traceback, with the chain behind it (urllib3, ssl, OSError),
    # goes to ``exception`` as kubernetes.core's fail_from_exception does; fail_json masks every no_log value in
    # it. Below -vvv it is left out: ansible-core 2.16 would print its last line after the sentence on every
    # failure (2.19 shows it only when tracebacks are enabled anyway).
    if getattr(module, '_verbosity', 0) >= 3:
        trace = ''.join(traceback.format_exception(type(error), error, error.__traceback__))
        module.fail_json(msg=error.msg, exception=trace, **error.result)
    module.fail_json(msg=error.msg, **error.result)
    return None  # not reached: fail_json exits
