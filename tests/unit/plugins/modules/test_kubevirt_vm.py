"""Module entry point of kubevirt_vm: argument validation sentences, result shape, no_log of passwords."""
import json

import pytest


from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _client
from ansible_collections.virtfleet.kubevirt.plugins.modules import kubevirt_vm
from tests.unit.plugins.fake_cluster import FakeCluster
from tests.unit.plugins.kube_fakes import make_client
from tests.unit.plugins.modules.module_args import patch_module_args

VMS = '/apis/kubevirt.io/v1/namespaces/ns/virtualmachines'


class Done(Exception):
    def __init__(self, failed, result):
        super().__init__(result.get('msg'))
        self.failed = failed
        self.result = result


@pytest.fixture
def fake(monkeypatch, capsys):
    """The cluster the module talks to: main() builds its own real Api over the real Client, whose urllib3 pool
    is this FakeCluster."""
    cluster = FakeCluster()
    cluster.capsys = capsys
    monkeypatch.setattr(_client, 'client_from_options', lambda opts: make_client(cluster))
    return cluster


def call(args, fake):
    """Run main() for real: the JSON it prints is what Ansible sees (no_log masking included)."""
    fake.capsys.readouterr()
    with pytest.raises(SystemExit), patch_module_args(args):
        kubevirt_vm.main()
    result = json.loads(fake.capsys.readouterr().out)
    return Done(bool(result.get('failed')), result)


@pytest.mark.parametrize('args,words', [
    ({'name': 'a', 'namespace': 'ns', 'running': True, 'run_strategy': 'Always'}, ['mutually exclusive', 'running', 'run_strategy']),
    ({'name': 'a', 'generate_name': 'b-', 'namespace': 'ns'}, ['mutually exclusive', 'name', 'generate_name']),
    ({'namespace': 'ns'}, ['one of the following is required', 'name', 'generate_name', 'vms']),
    ({'name': 'a', 'namespace': 'ns', 'instancetype': {'name': 'u1'}, 'cpu': {'cores': 2}}, ['mutually exclusive', 'instancetype', 'cpu']),
    ({'name': 'a', 'namespace': 'ns', 'definition': {'spec': {}}, 'spec': {}}, ['mutually exclusive', 'definition', 'spec']),
    ({'namespace': 'ns', 'vms': [{'name': 'a', 'running': True, 'run_strategy': 'Halted'}]},
     ['mutually exclusive', 'running', 'run_strategy', 'vms']),
    ({'name': 'a', 'namespace': 'ns', 'boot_disk': {'url': 'http://x'}}, ['size', 'url']),
    ({'name': 'a', 'namespace': 'ns', 'boot_disk': {'url': 'http://x', 'container_image': 'i', 'size': '1Gi'}},
     ['mutually exclusive', 'url', 'container_image']),
    ({'name': 'a', 'namespace': 'ns', 'cloud_init': {'user_data': 'ud-text', 'password': 'pw-long-enough'}}, ['mutually exclusive', 'user_data', 'password']),
    ({'name': 'a', 'namespace': 'ns', 'state': 'stopped', 'running': True}, ['state=stopped contradicts running=true']),
    ({'name': 'a', 'namespace': 'ns', 'run_strategy': 'Sometimes'}, ['run_strategy', 'Always']),
])
def test_invalid_combinations_fail_before_any_request(fake, args, words):
    done = call(args, fake)
    assert done.failed
    for word in words:
        assert word in done.result['msg']
    assert fake.sent() == []


def test_create_returns_kubevirt_core_shaped_result(fake):
    done = call({'name': 'a', 'namespace': 'ns', 'labels': {'app': 'a'}, 'spec': {'domain': {'devices': {}}}}, fake)
    assert not done.failed
    r = done.result
    assert r['changed'] is True and r['method'] == 'create'
    assert r['result']['metadata']['name'] == 'a'
    assert 'managedFields' not in r['result']['metadata']
    assert 'kubemacpool.io/transaction-timestamp' not in r['result']['metadata'].get('annotations', {})
    assert 'duration' in r and r['restart_required'] is False
    assert fake.writes() == [('POST', VMS, {})]
    assert fake.vm('a')['metadata']['labels'] == {'app': 'a'}


def test_password_is_masked_in_results(fake):
    done = call({'name': 'a', 'namespace': 'ns', 'boot_disk': {'container_image': 'img'},
                 'cloud_init': {'user': 'fedora', 'password': 'hunter2-secret'}}, fake)
    assert 'hunter2-secret' not in json.dumps(done.result)
    assert 'hunter2-secret' in json.dumps(fake.vm('a'))      # the VM itself carries it, as documented


def test_password_in_vms_item_is_masked_too(fake):
    done = call({'namespace': 'ns', 'boot_disk': {'container_image': 'img'},
                 'vms': [{'name': 'a', 'cloud_init': {'password': 'item-secret-pw'}}]}, fake)
    assert not done.failed
    assert 'item-secret-pw' not in json.dumps(done.result)
    assert 'item-secret-pw' in json.dumps(fake.bodies('POST', VMS))   # sent to the cluster, masked only in the result
