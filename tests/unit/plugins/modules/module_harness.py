"""Run a module's main() in-process: arguments in, exit_json/fail_json kwargs out, HTTP faked at the pool."""

import pytest

from ansible.module_utils import basic

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _client

from ..kube_fakes import FakePool
from .module_args import Exit, Fail, patch_module_args


class Harness:
    def __init__(self, monkeypatch):
        self.pool = FakePool()
        self.result = None
        self.failed = None
        self.clients = []
        harness = self
        monkeypatch.setattr(basic.AnsibleModule, 'exit_json', lambda module, **kw: harness._exit(**kw))
        monkeypatch.setattr(basic.AnsibleModule, 'fail_json', lambda module, **kw: harness._fail(**kw))
        real_init = _client.Client.__init__

        def init(client, configuration, **kwargs):
            kwargs['pool'] = harness.pool
            kwargs['retry'] = _client.RetryPolicy(sleep=lambda s: None)
            real_init(client, configuration, **kwargs)
            harness.clients.append(client)

        monkeypatch.setattr(_client.Client, '__init__', init)
        for name in [n for names in _client.AUTH_ENV.values() for n in names]:
            monkeypatch.delenv(name, raising=False)

    def _exit(self, **kwargs):
        self.result = kwargs
        raise Exit()

    def _fail(self, **kwargs):
        self.failed = kwargs
        raise Fail(kwargs['msg'])

    def run(self, main, args):
        self.result = self.failed = None
        with patch_module_args(args):
            with pytest.raises((Exit, Fail)):
                main()
        return self.result if self.result is not None else self.failed

    @property
    def request_count(self):
        return sum(c.request_count for c in self.clients)


AUTH = {'host': 'https://api.test:6443', 'api_key': 'secret-token'}
