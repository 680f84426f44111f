"""plugin_utils/_client: get_option adapter and AnsibleError translation for the inventory plugin."""
import pytest

from ansible.errors import AnsibleError

from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ApiError
from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils import _client as plugin_client


def getter(values):
    def get_option(name):
        if name == 'impersonate_groups':
            raise KeyError(name)   # a plugin that does not declare an option
        return values.get(name)
    return get_option


def test_client_from_plugin_options():
    client = plugin_client.client_from_plugin_options(getter({'host': 'https://h:6443', 'api_key': 't'}), environ={})
    assert client.host == 'https://h:6443'
    assert client.request_count == 0


def test_env_used_for_undeclared_or_unset_options():
    client = plugin_client.client_from_plugin_options(
        getter({}), environ={'K8S_AUTH_HOST': 'https://env:1', 'K8S_AUTH_API_KEY': 'x', 'K8S_AUTH_IMPERSONATE_GROUPS': 'a,b'})
    assert client.host == 'https://env:1'
    assert client.impersonate_groups == ['a', 'b']


def test_bad_options_become_ansible_error(tmp_path):
    with pytest.raises(AnsibleError) as err:
        plugin_client.client_from_plugin_options(getter({'kubeconfig': str(tmp_path / 'nope')}), environ={})
    assert 'does not exist: set kubeconfig' in str(err.value)


def test_translate_errors():
    def boom():
        raise ApiError('Access denied (403 Forbidden): nope.', 403)

    with pytest.raises(AnsibleError) as err:
        plugin_client.translate_errors(boom)
    assert 'Access denied' in str(err.value)
