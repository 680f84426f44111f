# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Argument specs shared by the modules, each paired 1:1 with a doc fragment of the same name.

``AUTH_ARG_SPEC`` <-> ``virtfleet.kubevirt._auth``, ``WAIT_ARG_SPEC`` <-> ``virtfleet.kubevirt._wait``.
A unit test checks that the specs and the fragments list the same options, types and aliases.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible.module_utils.basic import env_fallback

from ansible_collections.virtfleet.kubevirt.plugins.module_utils._client import AUTH_ENV


def _env(name):
    return (env_fallback, list(AUTH_ENV[name]))


AUTH_ARG_SPEC = {
    'kubeconfig': {'type': 'raw', 'fallback': _env('kubeconfig')},
    'context': {'type': 'str', 'fallback': _env('context')},
    'host': {'type': 'str', 'fallback': _env('host')},
    'api_key': {'type': 'str', 'no_log': True, 'fallback': _env('api_key')},
    'username': {'type': 'str', 'fallback': _env('username')},
    'password': {'type': 'str', 'no_log': True, 'fallback': _env('password')},
    'client_cert': {'type': 'path', 'aliases': ['cert_file'], 'fallback': _env('client_cert')},
    'client_key': {'type': 'path', 'aliases': ['key_file'], 'no_log': False, 'fallback': _env('client_key')},
    'ca_cert': {'type': 'path', 'aliases': ['ssl_ca_cert'], 'fallback': _env('ca_cert')},
    'validate_certs': {'type': 'bool', 'aliases': ['verify_ssl'], 'fallback': _env('validate_certs')},
    'proxy': {'type': 'str', 'fallback': _env('proxy')},
    'no_proxy': {'type': 'str', 'fallback': _env('no_proxy')},
    'proxy_headers': {
        'type': 'dict',
        'options': {
            'proxy_basic_auth': {'type': 'str', 'no_log': True},
            'basic_auth': {'type': 'str', 'no_log': True},
            'user_agent': {'type': 'str'},
        },
    },
    'persist_config': {'type': 'bool', 'fallback': _env('persist_config')},
    'impersonate_user': {'type': 'str', 'fallback': _env('impersonate_user')},
    'impersonate_groups': {'type': 'list', 'elements': 'str', 'fallback': _env('impersonate_groups')},
}

WAIT_ARG_SPEC = {
    'wait': {'type': 'bool'},
    'wait_sleep': {'type': 'int', 'default': 5},
    'wait_timeout': {'type': 'int', 'default': 120},
}

# Options of the read-only modules (kubevirt.core's INFO_ARG_SPEC plus hidden_fields).
INFO_ARG_SPEC = {
    'api_version': {'type': 'str', 'default': 'kubevirt.io/v1'},
    'name': {'type': 'str'},
    'namespace': {'type': 'str'},
    'label_selectors': {'type': 'list', 'elements': 'str', 'default': []},
    'field_selectors': {'type': 'list', 'elements': 'str', 'default': []},
    'hidden_fields': {'type': 'list', 'elements': 'str',
                      'default': ['metadata.annotations[kubemacpool.io/transaction-timestamp]', 'metadata.managedFields']},
}


def argument_spec(*specs, **extra):
    """Merge deep copies of shared specs with module-specific options (keyword arguments)."""
    merged = {}
    for spec in specs:
        merged.update(copy.deepcopy(spec))
    merged.update(copy.deepcopy(extra))
    return merged


def auth_options(params):
    """The connection options out of module params (env fallbacks already applied by AnsibleModule)."""
    return dict((name, params.get(name)) for name in AUTH_ARG_SPEC)
