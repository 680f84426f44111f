"""Builders for KubeVirt/Kubernetes objects as the API returns them (shared by inventory unit,
integration and bench code). Keep them schema-shaped: the integration tests load them into the emulator."""
import copy


def vmi(name, namespace="default", phase="Running", labels=None, annotations=None, interfaces=None,
        node="node01", guest_os=None, conditions=None, ports=None, uid=None):
    status = {"phase": phase}
    if phase == "Running":
        status["nodeName"] = node
        status["interfaces"] = interfaces if interfaces is not None else [
            {"name": "default", "interfaceName": "eth0", "ipAddress": "10.0.0.1", "ipAddresses": ["10.0.0.1"],
             "mac": "02:00:00:00:00:01", "infoSource": "domain, guest-agent"}]
        status["conditions"] = conditions if conditions is not None else [{"type": "Ready", "status": "True"}]
        if guest_os is not None:
            status["guestOSInfo"] = guest_os
    iface = {"name": "default", "masquerade": {}}
    if ports:
        iface["ports"] = ports
    obj = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {}),
                     "annotations": dict(annotations or {})},
        "spec": {"domain": {"devices": {"interfaces": [iface]}, "resources": {"requests": {"memory": "64Mi"}}},
                 "networks": [{"name": "default", "pod": {}}]},
        "status": status,
    }
    if uid:
        obj["metadata"]["uid"] = uid
    return obj


def vm(name, namespace="default", printable="Running", labels=None, annotations=None, run_strategy="Always",
       template_labels=None, uid=None):
    obj = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {}),
                     "annotations": dict(annotations or {})},
        "spec": {"runStrategy": run_strategy,
                 "template": {"metadata": {"labels": dict(template_labels or {})},
                              "spec": {"domain": {"devices": {}, "resources": {"requests": {"memory": "64Mi"}}}}}},
        "status": {"printableStatus": printable, "ready": printable == "Running", "created": printable != "Stopped"},
    }
    if uid:
        obj["metadata"]["uid"] = uid
    return obj


def service(name, namespace="default", type_="NodePort", selector=None, ports=None, ingress=None):
    obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"type": type_, "selector": dict(selector or {}),
                 "ports": copy.deepcopy(ports) if ports is not None else [
                     {"name": "ssh", "port": 22, "targetPort": 22, "nodePort": 30022, "protocol": "TCP"}]},
    }
    # the API server always returns a status for Services (empty loadBalancer unless one was provisioned)
    obj["status"] = {"loadBalancer": {"ingress": ingress} if ingress is not None else {}}
    return obj


def node(name, addresses):
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"addresses": [{"type": t, "address": a} for t, a in addresses]}}
