"""Each shared argument spec matches its doc fragment: same options, types, aliases, defaults, env names."""
import re

import pytest
import yaml

from ansible_collections.virtfleet.kubevirt.plugins.doc_fragments._auth import ModuleDocFragment as Auth
from ansible_collections.virtfleet.kubevirt.plugins.doc_fragments._wait import ModuleDocFragment as Wait
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _args, _client


@pytest.mark.parametrize('spec, fragment', [
    (_args.AUTH_ARG_SPEC, Auth.DOCUMENTATION),
    (_args.AUTH_ARG_SPEC, Auth.PLUGIN),
    (_args.WAIT_ARG_SPEC, Wait.DOCUMENTATION),
])
def test_spec_matches_fragment(spec, fragment):
    options = yaml.safe_load(fragment)['options']
    assert sorted(options) == sorted(spec)
    for name, doc in options.items():
        assert doc.get('type', 'str') == spec[name].get('type', 'str'), name
        assert sorted(doc.get('aliases', [])) == sorted(spec[name].get('aliases', [])), name
        assert doc.get('default') == spec[name].get('default'), name
        assert doc.get('elements') == spec[name].get('elements'), name


def test_plugin_fragment_env_names_match_the_client():
    options = yaml.safe_load(Auth.PLUGIN)['options']
    for name, env_names in _client.AUTH_ENV.items():
        assert sorted(e['name'] for e in options[name]['env']) == sorted(env_names), name


def test_module_spec_env_fallback_matches_the_client():
    for name, env_names in _client.AUTH_ENV.items():
        assert list(_args.AUTH_ARG_SPEC[name]['fallback'][1]) == list(env_names)


def test_every_documented_env_var_is_read():
    text = Auth.DOCUMENTATION
    documented = set(re.findall(r'E\((K8S_AUTH_[A-Z_]+)\)', text))
    read = set(n for names in _client.AUTH_ENV.values() for n in names) | set(_client.PROXY_HEADERS_ENV.values())
    assert documented == read


def test_secrets_are_no_log():
    assert _args.AUTH_ARG_SPEC['api_key']['no_log'] and _args.AUTH_ARG_SPEC['password']['no_log']
    assert _args.AUTH_ARG_SPEC['proxy_headers']['options']['proxy_basic_auth']['no_log']


def test_argument_spec_copies():
    spec = _args.argument_spec(_args.WAIT_ARG_SPEC, running={'type': 'bool'})
    spec['wait_timeout']['default'] = 1
    assert _args.WAIT_ARG_SPEC['wait_timeout']['default'] == 120
    assert spec['running'] == {'type': 'bool'}
