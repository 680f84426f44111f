"""Inventory plugin on the shared emulator with the simulated virt-controller: VMs started, paused and stopped
by KubeVirt's own state machine, and the guest agent host name from the guestosinfo subresource."""
import pytest

from tests.integration.conftest import unique_namespace, vm_manifest

from .inventory_support import run_inventory

PLUGIN = "virtfleet.kubevirt.kubevirt"


def vmi_path(ns, name):
    return "/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances/%s" % (ns, name)


@pytest.fixture
def running_vm(kubeapi):
    ns = unique_namespace(kubeapi, "invlive")
    kubeapi.apply_object(vm_manifest("guest", ns, labels={"app": "live"}))
    kubeapi.wait_for(vmi_path(ns, "guest"), lambda o: o and (o.get("status") or {}).get("phase") == "Running"
                     and (o["status"].get("interfaces") or [{}])[0].get("ipAddress"))
    kubeapi.wait_for("/apis/kubevirt.io/v1/namespaces/%s/virtualmachines/guest" % ns,
                     lambda o: (o.get("status") or {}).get("printableStatus") == "Running")
    return ns


def test_started_vm_becomes_a_host_with_controller_written_status(kubeapi, tmp_path, running_vm):
    ns = running_vm
    run = run_inventory(kubeapi, tmp_path, {"plugin": PLUGIN, "namespaces": [ns]})
    assert run.rc == 0, run
    host = "%s-guest" % ns
    assert run.hosts(ns) == [host]
    v = run.hostvars[host]
    vmi = kubeapi.get_object(vmi_path(ns, "guest"))
    assert v["ansible_host"] == vmi["status"]["interfaces"][0]["ipAddress"]
    assert v["vm_printable_status"] == "Running" and v["vmi_node_name"] == vmi["status"]["nodeName"]
    assert v["vmi_labels"]["app"] == "live"


def test_guest_agent_hostname_costs_one_request_per_vm(kubeapi, tmp_path, running_vm):
    ns = running_vm
    run = run_inventory(kubeapi, tmp_path, {"plugin": PLUGIN, "namespaces": [ns],
                                            "address_strategies": ["guest_agent_hostname", "first_interface"]})
    assert run.rc == 0, run
    v = run.hostvars["%s-guest" % ns]
    assert (v["ansible_host"], v["vm_address_source"]) == ("guest", "guest_agent_hostname")
    sub = [r for r in run.requests if r["path"].endswith("/guestosinfo")]
    assert [r["path"] for r in sub] == ["/apis/subresources.kubevirt.io/v1/namespaces/%s/virtualmachineinstances/guest/guestosinfo" % ns]


def test_paused_and_stopped_vms_follow_states_option(kubeapi, tmp_path, running_vm):
    ns = running_vm
    status, body, _headers = kubeapi.http("PUT", "/apis/subresources.kubevirt.io/v1/namespaces/%s/virtualmachineinstances/guest/pause" % ns, {})
    assert status in (200, 202), body
    kubeapi.wait_for(vmi_path(ns, "guest"), lambda o: any(c.get("type") == "Paused" and c.get("status") == "True"
                                                          for c in (o.get("status") or {}).get("conditions") or []))
    run = run_inventory(kubeapi, tmp_path, {"plugin": PLUGIN, "namespaces": [ns]})
    assert run.rc == 0 and run.hosts(ns) == [], run
    run = run_inventory(kubeapi, tmp_path, {"plugin": PLUGIN, "namespaces": [ns], "states": ["paused"]})
    assert run.hostvars["%s-guest" % ns]["vm_state"] == "Paused"

    kubeapi.apply_object(vm_manifest("guest", ns, run_strategy="Halted", labels={"app": "live"}))
    kubeapi.wait_for(vmi_path(ns, "guest"), lambda o: o is None, timeout=30)
    run = run_inventory(kubeapi, tmp_path, {"plugin": PLUGIN, "namespaces": [ns], "states": ["all"]})
    assert run.rc == 0, run
    v = run.hostvars["%s-guest" % ns]
    assert v["vm_state"] in ("Stopped", "Stopping") and "ansible_host" not in v and "vmi_phase" not in v
