"""playbooks/site.yml, declare_vms.yml and configure_guests.yml against the emulator (simulated guests).

The simulated guests have no Service and no SSH server: the example inventory (node_port, then api_tunnel) sends
ssh through the API server's portforward, which virt-api refuses (nothing listens on port 22), so configure_guests.yml
sees them as unreachable: what is asserted here is the chain up to the guests, idempotence, and how the guest play
reports hosts it cannot reach or does not find. Configuring real guests over SSH (a NodePort and the API tunnel) is
exercised by `make test-guest` and `make demo`.
"""
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import kubeapi_env
from tests.integration.conftest import assert_no_deprecation
from tests.integration.test_kubevirt_install import CDI166, KV190, WRITES

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
VM_PATH = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachines/%s"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITestKeyOnlyForTheSitePlaybookTests0000000 test@example"

pytestmark = pytest.mark.skipif(bool(os.environ.get("VIRTFLEET_TEST_KUBECONFIG")),
                                reason="installs KubeVirt cluster-wide: emulator only")


EMULATOR = {"name": "site", "controllers": ("virt", "cdi", "operators"), "timing": "fast"}   # the emu fixture


def namespace(emu):
    """A fresh namespace name; declare_vms.yml creates the namespace (fleet_create_namespaces defaults to true)."""
    return "site-%s" % uuid.uuid4().hex[:8]


def inventory_dir(tmp_path, ns):
    """The example inventory source, limited to the test's namespace (other tests' VMs stay out)."""
    source = yaml.safe_load((PLAYBOOKS / "inventory" / "kubevirt.yml").read_text())
    source["namespaces"] = [ns]
    inv = tmp_path / "inventory"
    inv.mkdir(exist_ok=True)
    (inv / "kubevirt.yml").write_text(yaml.safe_dump(source))
    return inv


def run(emu, tmp_path, playbook, extra, inventory=None):
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    env = kubeapi_env(emu)
    env.update({"ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "ANSIBLE_TIMEOUT": "2",
                "ANSIBLE_HOST_KEY_CHECKING": "0", "ANSIBLE_LOCALHOST_WARNING": "0",
                "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0", "ANSIBLE_RETRY_FILES_ENABLED": "0",
                "ANSIBLE_DEPRECATION_WARNINGS": "1"})
    # No ansible_python_interpreter as an extra variable: it would apply to the guests too. The implicit
    # localhost (not listed in any inventory) runs the modules with ansible-playbook's own Python.
    if inventory is None:
        inventory = tmp_path / "empty.yml"
        inventory.write_text("all: {}\n")
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory),
           "-e", "@%s" % (tmp_path / "vars.json"), str(PLAYBOOKS / playbook)]
    proc = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=400, check=False)
    assert_no_deprecation(proc.stdout + proc.stderr)
    return proc.returncode, proc.stdout + proc.stderr


def recaps(output):
    found = re.findall(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output, re.M)
    return {host: dict(zip(("ok", "changed", "unreachable", "failed"), map(int, nums))) for host, *nums in found}


INSTALL = {"kubevirt_manifest_path": KV190, "kubevirt_version": "v1.9.0", "kubevirt_cdi": True,
           "kubevirt_cdi_manifest_path": CDI166, "kubevirt_wait_timeout": 120}


def fleet(ns):
    return {"fleet_namespace": ns, "fleet_ssh_authorized_keys": [KEY], "fleet_labels": {"fleet": "site-test"},
            "fleet_sizes": {"tiny": {"cpu": 1, "memory": "256Mi"}}, "fleet_default_size": "tiny",
            "fleet_wait_timeout": 120,
            "fleet_vms": [{"name": "web-1", "labels": {"app": "web"}},
                          {"name": "web-2", "labels": {"app": "web"}, "cpu": 2, "memory": "512Mi"},
                          {"name": "spare", "running": False}]}


def test_site_declares_installs_and_second_run_changes_nothing(emu, tmp_path):
    ns = namespace(emu)
    inv = inventory_dir(tmp_path, ns)
    extra = dict(INSTALL, **fleet(ns), configure_guests_allow_unreachable=True)
    rc, out = run(emu, tmp_path, "site.yml", extra, inventory=inv)
    assert rc == 0, out
    assert recaps(out)["localhost"]["changed"] >= 2, out    # the install and the fleet
    assert "skipping: no hosts matched" in out               # prepare_nodes: no kubevirt_nodes in this inventory
    assert "; namespaces created: %s." % ns in out, out
    assert emu.get_object("/api/v1/namespaces/%s" % ns) is not None

    web2 = emu.get_object(VM_PATH % (ns, "web-2"))
    spec = web2["spec"]["template"]["spec"]
    assert web2["spec"]["runStrategy"] == "Always"
    assert web2["metadata"]["labels"] == {"app": "web", "fleet": "site-test"}
    assert spec["domain"]["cpu"]["cores"] == 2 and spec["domain"]["memory"]["guest"] == "512Mi"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["rootdisk"]["containerDisk"]["image"] == "quay.io/containerdisks/debian:12"
    user_data = volumes["cloudinit"]["cloudInitNoCloud"]["userData"]
    assert KEY in user_data and "debian" in user_data
    assert emu.get_object(VM_PATH % (ns, "web-1"))["spec"]["template"]["spec"]["domain"]["memory"]["guest"] == "256Mi"
    assert emu.get_object(VM_PATH % (ns, "spare"))["spec"]["runStrategy"] == "Halted"

    # The inventory was refreshed after the fleet was declared: the guest play found the two running VMs.
    assert "Configured 0 of 2 running VM(s)." in out, out
    assert re.search(r"Unreachable: (%s-web-1, %s-web-2|%s-web-2, %s-web-1)" % (ns, ns, ns, ns), out), out

    mark = emu.mark()
    rc, out = run(emu, tmp_path, "site.yml", extra, inventory=inv)
    assert rc == 0, out
    assert recaps(out)["localhost"]["changed"] == 0, out
    assert [e for e in emu.requests(since=mark) if e["method"] in WRITES] == []


@pytest.mark.parametrize("owned", [True, False])
def test_declare_vms_owns_the_fleet_unless_told_not_to(emu, tmp_path, owned):
    ns = namespace(emu)
    first = fleet(ns)
    first["fleet_vms"][0]["labels"] = {"app": "web", "tier": "front"}
    rc, out = run(emu, tmp_path, "declare_vms.yml", dict(first, fleet_wait=False))
    assert rc == 0, out
    # The label is dropped from the fleet file: removed when the file owns the VMs, kept otherwise.
    rc, out = run(emu, tmp_path, "declare_vms.yml", dict(fleet(ns), fleet_wait=False, fleet_full_ownership=owned))
    assert rc == 0, out
    vm = emu.get_object(VM_PATH % (ns, "web-1"))
    assert ("tier" in vm["metadata"]["labels"]) is not owned
    assert ("virtfleet.kubevirt/applied-digest" in vm["metadata"].get("annotations", {})) is True   # first run owned it


def test_declare_vms_alone_deletes_with_fleet_state_absent(emu, tmp_path):
    ns = namespace(emu)
    rc, out = run(emu, tmp_path, "declare_vms.yml", fleet(ns))
    assert rc == 0, out
    assert "3 VM(s) declared: 3 changed; running: 2, stopped: 1; namespaces created: %s." % ns in out, out
    rc, out = run(emu, tmp_path, "declare_vms.yml", dict(fleet(ns), fleet_state="absent"))
    assert rc == 0, out
    assert "3 VM(s) deleted: 3 changed; running: 0, stopped: 0." in out, out
    for name in ("web-1", "web-2", "spare"):
        assert emu.get_object(VM_PATH % (ns, name)) is None
    assert emu.get_object("/api/v1/namespaces/%s" % ns) is not None     # deleting the fleet keeps its namespace


def test_declare_vms_into_a_missing_namespace_names_it_without_fleet_create_namespaces(emu, tmp_path):
    fleet_vars = {"fleet_vms": [{"name": "a", "namespace": "no-such-ns"}], "fleet_create_namespaces": False}
    rc, out = run(emu, tmp_path, "declare_vms.yml", fleet_vars)
    assert rc != 0
    out = out.replace('\\"', '"')
    assert 'Namespace "no-such-ns" does not exist' in out and "create_namespace=true" in out, out
    assert emu.get_object("/api/v1/namespaces/no-such-ns") is None


@pytest.mark.parametrize("fleet_vars, sentence", [
    ({}, "missing required arguments: fleet_vms"),
    ({"fleet_vms": [{"namespace": "x"}]}, "missing required arguments: name found in fleet_vms"),
    ({"fleet_vms": [{"name": "a", "namespace": "x", "cpu": "many"}]}, "argument 'cpu' is of type"),
    ({"fleet_vms": [{"name": "a", "namespace": "x", "running": "sometimes"}]}, "argument 'running' is of type"),
    ({"fleet_vms": [{"name": "a"}]}, "VM a names no namespace (set namespace or fleet_namespace)"),
    ({"fleet_vms": [{"name": "a", "namespace": "x", "size": "huge"}]},
     "VM a has size huge, which is not one of small, medium, large (fleet_sizes)"),
    ({"fleet_vms": [{"name": "a", "namespace": "x"}, {"name": "a", "namespace": "x"}]}, "VM x/a is listed twice"),
    ({"fleet_vms": [{"name": "a", "namespace": "x", "user_data": "#cloud-config\n", "user": "u"}]},
     "VM a gives user_data together with user/ssh_authorized_keys (use one)"),
    ({"fleet_state": "gone", "fleet_vms": [{"name": "a", "namespace": "x"}]}, "fleet_state must be one of"),
    ({"fleet_create_namespaces": "maybe", "fleet_vms": [{"name": "a", "namespace": "x"}]},
     "argument 'fleet_create_namespaces' is of type"),
])
def test_bad_fleet_input_is_one_sentence_and_writes_nothing(emu, tmp_path, fleet_vars, sentence):
    mark = emu.mark()
    rc, out = run(emu, tmp_path, "declare_vms.yml", fleet_vars)
    assert rc != 0
    match = re.search(r'fatal: \[localhost\]: FAILED! => (\{.*\})$', out, re.M)
    assert match, out
    msg = json.loads(match.group(1))["msg"]
    assert msg.startswith("The fleet description is invalid: ") and sentence in msg, msg
    assert msg.endswith("Fix the variables file passed with -e @fleet.yml (format: playbooks/vars/fleet.example.yml).")
    assert "\n" not in msg
    assert emu.requests(since=mark) == []


def test_site_stops_on_a_bad_fleet_before_installing(emu, tmp_path):
    mark = emu.mark()
    rc, out = run(emu, tmp_path, "site.yml", dict(INSTALL, fleet_vms=[{"name": "a", "namespace": "x", "size": "xl"}]))
    assert rc != 0
    assert "The fleet description is invalid: VM a has size xl, which is not one of small, medium, large" in out, out
    assert "PLAY [Install KubeVirt]" not in out
    assert emu.requests(since=mark) == []


def test_configure_guests_rejects_bad_variables_in_one_sentence(emu, tmp_path):
    inv = inventory_dir(tmp_path, namespace(emu))
    rc, out = run(emu, tmp_path, "configure_guests.yml", {"configure_guests_packages": {"not": "a list"},
                                                          "configure_guests_allow_unreachable": "perhaps"},
                  inventory=inv)
    assert rc != 0
    assert "The configure_guests variables are invalid: " in out, out
    assert "configure_guests_allow_unreachable" in out and "configure_guests_packages" in out, out


def test_configure_guests_with_no_vm_in_the_inventory(emu, tmp_path):
    inv = inventory_dir(tmp_path, namespace(emu))
    for inventory in (inv, None):
        rc, out = run(emu, tmp_path, "configure_guests.yml", {}, inventory=inventory)
        assert rc == 0, out
        assert "No running VM matches all in the inventory: nothing to configure." in out, out


def test_configure_guests_fails_when_no_guest_answers(emu, tmp_path):
    ns = namespace(emu)
    rc, out = run(emu, tmp_path, "declare_vms.yml", dict(fleet(ns), fleet_vms=[{"name": "lonely"}]))
    assert rc == 0, out
    inv = inventory_dir(tmp_path, ns)
    rc, out = run(emu, tmp_path, "configure_guests.yml", {}, inventory=inv)
    assert rc == 2, out
    assert "Configured 0 of 1 running VM(s)." in out
    assert ("1 running VM(s) could not be reached over SSH (%s-lonely); check the inventory's address strategy, "
            "the SSH key and ansible_user, or set configure_guests_allow_unreachable=true." % ns) in out, out
    # A pattern that matches none of the VMs configures nothing and says so.
    rc, out = run(emu, tmp_path, "configure_guests.yml", {"configure_guests_hosts": "app_db"}, inventory=inv)
    assert rc == 0, out
    assert "No running VM matches app_db in the inventory: nothing to configure." in out, out
