"""The info modules accept every option of kubevirt.core 2.2's modules of the same names, with the same
types, defaults and aliases (the table is that collection's documented interface), so migrating is a
change of prefix. Our extra options must be optional."""
import pytest

from ansible_collections.virtfleet.kubevirt.plugins.module_utils._args import (
    AUTH_ARG_SPEC,
    INFO_ARG_SPEC,
    WAIT_ARG_SPEC,
    argument_spec,
)

# name: (type, default, aliases, elements) as documented by kubevirt.core 2.2.x
KUBEVIRT_CORE_INFO_OPTIONS = {
    'api_key': ('str', None, None, None),
    'api_version': ('str', 'kubevirt.io/v1', None, None),
    'ca_cert': ('path', None, ['ssl_ca_cert'], None),
    'client_cert': ('path', None, ['cert_file'], None),
    'client_key': ('path', None, ['key_file'], None),
    'context': ('str', None, None, None),
    'field_selectors': ('list', [], None, 'str'),
    'hidden_fields': ('list', ['metadata.annotations[kubemacpool.io/transaction-timestamp]', 'metadata.managedFields'],
                      None, 'str'),
    'host': ('str', None, None, None),
    'impersonate_groups': ('list', None, None, 'str'),
    'impersonate_user': ('str', None, None, None),
    'kubeconfig': ('raw', None, None, None),
    'label_selectors': ('list', [], None, 'str'),
    'name': ('str', None, None, None),
    'namespace': ('str', None, None, None),
    'no_proxy': ('str', None, None, None),
    'password': ('str', None, None, None),
    'persist_config': ('bool', None, None, None),
    'proxy': ('str', None, None, None),
    'proxy_headers': ('dict', None, None, None),
    'username': ('str', None, None, None),
    'validate_certs': ('bool', None, ['verify_ssl'], None),
    'wait': ('bool', None, None, None),
    'wait_sleep': ('int', 5, None, None),
    'wait_timeout': ('int', 120, None, None),
}
VM_INFO_ONLY = {'running': ('bool', None, None, None)}


@pytest.mark.parametrize('module, reference', [
    ('kubevirt_vm_info', dict(KUBEVIRT_CORE_INFO_OPTIONS, **VM_INFO_ONLY)),
    ('kubevirt_vmi_info', KUBEVIRT_CORE_INFO_OPTIONS),
])
def test_options_superset_of_kubevirt_core(module, reference):
    extra = VM_INFO_ONLY if module == 'kubevirt_vm_info' else {}
    spec = argument_spec(AUTH_ARG_SPEC, INFO_ARG_SPEC, WAIT_ARG_SPEC, **dict((k, {'type': 'bool'}) for k in extra))
    for name, (otype, default, aliases, elements) in reference.items():
        assert name in spec, name
        assert spec[name].get('type', 'str') == otype, name
        assert spec[name].get('default') == default, name
        assert spec[name].get('aliases') == aliases, name
        assert spec[name].get('elements') == elements, name
    for name in set(spec) - set(reference):
        assert not spec[name].get('required') and 'default' not in spec[name], name
