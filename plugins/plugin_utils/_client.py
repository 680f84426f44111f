# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The client layer for controller-side plugins (the inventory plugin): options come from ``get_option``
(which already applied the ``env:`` entries of the ``virtfleet.kubevirt._auth.plugin`` doc fragment) and
errors become ``AnsibleError`` with the same one-sentence messages the modules give."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleError
from ansible.utils.display import Display

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _client
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._args import INSECURE_WARNING, insecure
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import KubeVirtError


def _plugin_options(get_option):
    options = {}
    for name in _client.AUTH_OPTIONS:
        try:
            options[name] = get_option(name)
        except KeyError:
            # A plugin may not declare every connection option; unset ones still come from K8S_AUTH_*.
            options[name] = None
    return options


def client_from_plugin_options(get_option, environ=None, **kwargs):
    """``self.get_option`` -> ``_client.Client``; raises AnsibleError with a clear sentence on bad options."""
    if _client.IMPORT_ERROR is not None:
        raise AnsibleError('The kubernetes Python library (>= 28.1.0) is required for this plugin on the controller: '
                           'pip install kubernetes (%s).' % _client.IMPORT_ERROR)
    try:
        client = _client.client_from_options(_plugin_options(get_option), environ=environ, **kwargs)
    except KubeVirtError as exc:
        raise AnsibleError(exc.msg)
    if insecure(client):
        Display().warning(INSECURE_WARNING)
    return client


def translate_errors(func, *args, **kwargs):
    """Call ``func`` and turn a KubeVirtError (HTTP, TLS, wait...) into AnsibleError, for use at the plugin edge."""
    try:
        return func(*args, **kwargs)
    except KubeVirtError as exc:
        raise AnsibleError(exc.msg)
