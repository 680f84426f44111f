"""The API tunnel's one-sentence errors reach Ansible's UNREACHABLE message (issue #19, point 3).

ansible-core's default ssh_args turn ControlPersist on, and then ssh sends its ProxyCommand's stderr to /dev/null
(OpenSSH sshconnect.c ssh_proxy_connect): the bridge writes its sentence to ssh's own stderr as well, which is what
Ansible reports. Checked with ansible's real ssh connection against the emulator's portforward, for a guest port
that is closed (a simulated VM has no SSH server) and for credentials without the RBAC right, with the default
ssh_args and without ControlPersist: the sentence is in the message exactly once.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import unique_namespace, vm_manifest

VMIS = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances"
NO_PERSIST = "-o ControlMaster=no -o ControlPersist=no"


@pytest.fixture(scope="module")
def cluster(kubeapi):
    ns = unique_namespace(kubeapi, "tunans")
    kubeapi.apply_object(vm_manifest("web", ns))
    kubeapi.wait_for(VMIS % ns + "/web", lambda o: o and (o.get("status") or {}).get("phase") == "Running", timeout=30)
    # The inventory's lists, and no get: the emulator's rule for virtualmachineinstances covers its subresources.
    kubeapi.add_token("tunnel-reader", namespaces=[ns], verbs=["list", "watch"], user="reader",
                      resources=["virtualmachines", "virtualmachineinstances", "services"])
    return ns


def unreachable_message(kubeapi, ns, tmp_path, ssh_args=None, token=None):
    """ansible -m ping over the api_tunnel host of VM web: (exit status, the UNREACHABLE msg)."""
    source = tmp_path / "kubevirt.yml"
    source.write_text(yaml.safe_dump({"plugin": "virtfleet.kubevirt.kubevirt", "namespaces": [ns],
                                      "address_strategies": ["node_port", "api_tunnel"]}))
    env = kubeapi.env()
    if token:
        env["K8S_AUTH_KUBECONFIG"] = env["KUBECONFIG"] = str(kubeapi.kubeconfig_for(token=token))
    env.update({"ANSIBLE_NOCOLOR": "1", "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_TIMEOUT": "30",
                "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path / "cp")})
    env.pop("ANSIBLE_SSH_ARGS", None)
    if ssh_args is not None:
        env["ANSIBLE_SSH_ARGS"] = ssh_args
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible"), "-i", str(source), "%s-web" % ns, "-m", "ping",
                           "-u", "debian"], env=env, capture_output=True, text=True, timeout=120, check=False)
    match = re.search(r"^%s-web \| UNREACHABLE! => (\{.*?^\})" % re.escape(ns), proc.stdout, re.M | re.S)
    assert match, proc.stdout + proc.stderr
    return proc.returncode, json.loads(match.group(1))["msg"]


@pytest.mark.parametrize("ssh_args", [None, NO_PERSIST], ids=["default-controlpersist", "no-controlpersist"])
def test_closed_guest_port_is_one_sentence_in_the_unreachable_message(kubeapi, cluster, tmp_path, ssh_args):
    rc, msg = unreachable_message(kubeapi, cluster, tmp_path, ssh_args)
    sentence = ("nothing listens on port 22 in VMI %s/web (start the SSH server in the guest, or set ssh_port / the "
                "annotation virtfleet.kubevirt/ssh-port to the port it listens on)." % cluster)
    assert rc == 4 and msg.count(sentence) == 1, msg
    assert msg.startswith("Failed to connect to the host via ssh: " + sentence) or \
        msg.startswith("Task failed: Failed to connect to the host via ssh: " + sentence), msg


@pytest.mark.parametrize("ssh_args", [None, NO_PERSIST], ids=["default-controlpersist", "no-controlpersist"])
def test_forbidden_is_one_sentence_in_the_unreachable_message(kubeapi, cluster, tmp_path, ssh_args):
    rc, msg = unreachable_message(kubeapi, cluster, tmp_path, ssh_args, token="tunnel-reader")
    sentence = ("forbidden: reader may not get virtualmachineinstances/portforward in %s (grant verb get on "
                "subresources.kubevirt.io virtualmachineinstances/portforward)." % cluster)
    assert rc == 4 and msg.count(sentence) == 1, msg
