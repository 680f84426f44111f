"""The emulator process state: registry, store, API, auth, faults, log, CA, controllers; seeding."""
import os
import threading
from pathlib import Path

import yaml

from . import rbac
from .api import Api, Options
from .errors import ApiError
from .faults import Faults
from .portforward import GuestPorts
from .resources import Registry, builtin_types
from .server import RequestLog
from .store import Store

CRD_FILES = ("kubevirt-crds.yaml", "cdi-crds.yaml")


def default_api_dir():
    env = os.environ.get("VIRTFLEET_KUBEVIRT_API_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "fixtures" / "kubevirt-api"


class App:
    def __init__(self, admin_token, ca=None, timing="fast", history=200000):
        self.registry = Registry()
        for rt in builtin_types():
            self.registry.add(rt)
        self.store = Store(history=history)
        self.api = Api(self.registry, self.store)
        self.authz = rbac.Authorizer(admin_token)
        self.faults = Faults()
        self.log = RequestLog()
        self.ca = ca
        self.timing = timing
        self.stopping = threading.Event()
        self.subresource_handlers = {}
        self.guest_ports = GuestPorts()   # what a portforward reaches: real guests' port 22, test echo servers
        self.controllers = []

    def admin(self, manager="kubeapi-emulator"):
        return Options(validation="Ignore", manager=manager, trusted=True)

    def ensure(self, api_version, kind, obj):
        """Create obj (admin) unless it exists."""
        rt = self.registry.by_kind(api_version, kind)
        version = api_version.rpartition("/")[2]
        obj = dict(obj, apiVersion=api_version, kind=kind)
        ns = obj["metadata"].get("namespace", "") if rt.namespaced else ""
        try:
            return self.api.create(rt, version, ns, obj, self.admin())
        except ApiError as exc:
            if exc.code != 409:
                raise
            return None

    def load_crds(self, api_dir):
        crd_type = self.registry.get("apiextensions.k8s.io", "customresourcedefinitions")
        for fname in CRD_FILES:
            path = Path(api_dir) / fname
            if not path.exists():
                raise SystemExit("kubeapi: CRD file %s not found; pass --api-dir or set VIRTFLEET_KUBEVIRT_API_DIR"
                                 % path)
            with open(path) as fh:
                for doc in yaml.load_all(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
                    if not doc or doc.get("kind") != "CustomResourceDefinition":
                        continue
                    self.api.create(crd_type, "v1", "", doc, self.admin())

    def seed(self, nodes=2):
        for ns in ("default", "kube-system", "kube-public", "kubevirt"):
            self.ensure("v1", "Namespace", {"metadata": {"name": ns}})
        for i in range(1, nodes + 1):
            self.add_node("node%02d" % i, "192.0.2.%d" % (10 + i))
        self.ensure("v1", "ServiceAccount", {"metadata": {"name": "default", "namespace": "default"}})
        self.ensure("storage.k8s.io/v1", "StorageClass", {
            "metadata": {"name": "local", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "WaitForFirstConsumer"})

    def add_node(self, name, ip):
        idx = int(ip.rsplit(".", 1)[1])
        rt = self.registry.get("", "nodes")
        obj = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "kubevirt.io/schedulable": "true", "node-role.kubernetes.io/worker": ""}},
            "spec": {}}
        try:
            self.api.create(rt, "v1", "", obj, self.admin("kubelet"))
        except ApiError as exc:
            if exc.code != 409:
                raise
            return

        def status(o):
            o["status"] = {
                "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110", "devices.kubevirt.io/kvm": "1k"},
                "allocatable": {"cpu": "8", "memory": "31Gi", "pods": "110", "devices.kubevirt.io/kvm": "1k"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                "message": "kubelet is posting ready status"}],
                "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": "v1.34.0",
                             "kubeProxyVersion": "", "osImage": "Debian GNU/Linux 13 (trixie)",
                             "containerRuntimeVersion": "containerd://2.0.0", "kernelVersion": "6.12.9-amd64",
                             "bootID": "00000000-0000-4000-8000-0000000000%02d" % idx,
                             "machineID": "%032x" % idx, "systemUUID": "00000000-0000-4000-8000-0000000001%02d" % idx},
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}
        self.api.write_status(rt, "", name, status, "kubelet")
