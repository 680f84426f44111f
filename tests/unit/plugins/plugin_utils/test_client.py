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


def test_header_lines_keep_every_impersonated_group():
    """The API tunnel sends these lines itself: a header given twice (one per group) must stay two lines."""
    client = plugin_client.client_from_plugin_options(
        getter({}), environ={'K8S_AUTH_HOST': 'https://env:1', 'K8S_AUTH_API_KEY': 'tok', 'K8S_AUTH_IMPERSONATE_USER': 'u',
                             'K8S_AUTH_IMPERSONATE_GROUPS': 'ops,dev team'})
    lines = client.header_lines()
    assert 'Authorization: Bearer tok' in [line[:14].title() + line[14:] for line in lines]   # names are case-insensitive
    assert [line for line in lines if line.startswith('Impersonate-Group: ')] == [
        'Impersonate-Group: ops', 'Impersonate-Group: dev team']


def test_user_agent_names_the_released_version():
    """User-Agent carries galaxy.yml's version (servers' audit logs show which release sent a request)."""
    import pathlib
    import re
    from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _client
    galaxy = pathlib.Path(__file__).resolve().parents[4] / 'galaxy.yml'
    version = re.search(r'^version:\s*(\S+)', galaxy.read_text(), re.M).group(1)
    assert _client.USER_AGENT == 'virtfleet.kubevirt/%s' % version
