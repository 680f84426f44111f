"""The API server a benchmark runs against: our emulator (tests/kubeapi) or a real kube-apiserver (realk8s).

Both come from the test harness with the same interface (tests/kubeapi/harness.py ``Emulator``,
tests/kubeapi/realserver.py ``RealServer``): ``kubeconfig``, ``requests()``/``reset_requests()``/``mark()`` (the
emulator's own request log, or the log of the TLS proxy in front of the real server), ``apply_object``, ``http``.

    server = start("real", workdir, controllers=(), nodes=4)
    load(server, objects)        # emulator: its bulk hook (not logged); real server: create + /status, through the API
    ...
    server.stop()

``--server auto`` (the default) means the real server when realk8s is there (``$VIRTFLEET_REALK8S``, default
``../shared/realk8s`` beside the repository), else the emulator.
"""
import base64
import json
import os
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import urllib3
import yaml

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from tests.kubeapi import realserver  # noqa: E402  (the repo root must be on sys.path first)
from tests.kubeapi.harness import Emulator  # noqa: E402

LABELS = {"emulator": "emulator", "real": "real kube-apiserver (realk8s)"}
# NodePort Services must have distinct node ports on a real server; its default range (30000-32767) holds 2,768.
NODE_PORT_RANGE = (30000, 62767)
SEED_WORKERS = 4
# Field managers of the seeded objects, as on a cluster where users create VMs and Services with kubectl and
# KubeVirt's controllers run: (creator, writer of the status subresource).
MANAGERS = {"VirtualMachine": ("kubectl-client-side-apply", "virt-controller"),
            "VirtualMachineInstance": ("virt-controller", "virt-handler"),
            "Service": ("kubectl-client-side-apply", "kube-controller-manager")}
# Status fields a second component writes into an object without status subresource (an Update of the object).
HANDLER_STATUS = {"VirtualMachineInstance": ("interfaces", "guestOSInfo", "currentCPUTopology", "machine", "memory",
                                             "migrationMethod", "migrationTransport", "selinuxContext", "volumeStatus")}


# The reference collection's virtualenv (make bench-venv) and the collection link (make collection) every bench needs.
REF_BIN = REPO / ".venv-ref" / "bin"
COLLECTIONS = REPO / ".build" / "collections"


def check_prerequisites(ours_only):
    """Exit with the make target to run when the reference virtualenv (unless ``ours_only``) or the link is missing."""
    if not ours_only and not (REF_BIN / "ansible-playbook").exists():
        raise SystemExit("reference virtualenv missing (%s): run `make bench-venv` or pass --ours-only" % REF_BIN)
    if not (COLLECTIONS / "ansible_collections" / "virtfleet" / "kubevirt").exists():
        raise SystemExit("collection link missing: run `make collection`")


def add_argument(parser):
    parser.add_argument("--server", choices=("auto", "emulator", "real"), default="auto",
                        help="API server: our emulator, a real kube-apiserver + etcd (realk8s, %s), or auto (real "
                             "when realk8s is there; default)" % realserver.realk8s_dir())


def resolve(choice):
    """'emulator' or 'real' for the --server choice; exits when 'real' cannot run here."""
    _venv_kubectl_on_path()
    if choice == "auto":
        choice = "real" if realserver.available() and shutil.which("kubectl") else "emulator"
    if choice == "real":
        if not realserver.available():
            raise SystemExit("realk8s not found in %s: set VIRTFLEET_REALK8S to the folder holding realk8s.sh, or pass "
                             "--server emulator" % realserver.realk8s_dir())
        if not shutil.which("kubectl"):
            raise SystemExit("--server real needs kubectl on PATH (realk8s installs the KubeVirt CRDs with it)")
    return choice


def _venv_kubectl_on_path():
    """realk8s.sh and RealServer run `kubectl`; the project's virtualenv has one (`make venv`)."""
    venv_bin = REPO / ".venv" / "bin"
    if not shutil.which("kubectl") and (venv_bin / "kubectl").exists():
        os.environ["PATH"] = str(venv_bin) + os.pathsep + os.environ.get("PATH", "")


def start(kind, workdir, controllers=(), nodes=4, timing="fast"):
    """A started server of ``kind`` ('emulator' or 'real') in ``workdir``; the caller stops it."""
    if kind == "real":
        # Environment of realk8s.sh (RealServer.start runs it): a node-port range for many NodePort Services.
        extra = os.environ.get("REALK8S_APISERVER_ARGS", "")
        if "--service-node-port-range" not in extra:
            extra += " --service-node-port-range=%d-%d" % NODE_PORT_RANGE
            os.environ["REALK8S_APISERVER_ARGS"] = extra.strip()
        server = realserver.RealServer(workdir, controllers=controllers, timing=timing, nodes=nodes)
        server.start(timeout=300)
    else:
        server = Emulator(workdir, tls=True, controllers=controllers, timing=timing, nodes=nodes)
        server.start(timeout=60)
    server.kind = kind
    return server


def load(server, objects, chunk=2000):
    """Create ``objects`` (with their ``status``) before a benchmark; returns the seconds it took.

    Emulator: its bulk hook (``POST /_emulator/bulk``, in-process, not request-logged). Real server: through its API
    (see `Seeder`); cluster-scoped objects first. RealServer's own bulk hook does the same one request at a time
    (about 40 ms and 5 requests per object here), too slow for 30,000 objects."""
    started = time.perf_counter()
    if getattr(server, "kind", "emulator") == "real":
        seeder = Seeder(server)
        seeder.create_all(objects)
        seeder.wait_settled(len([o for o in objects if o["kind"] == "Service"]))
    else:
        pool = urllib3.PoolManager(ca_certs=str(server.ca_file), maxsize=1)
        for start_at in range(0, len(objects), chunk):
            body = json.dumps({"objects": objects[start_at:start_at + chunk]})
            resp = pool.request("POST", server.url + "/_emulator/bulk", body=body, timeout=600,
                                headers={"Authorization": "Bearer " + server.admin_token,
                                         "Content-Type": "application/json"})
            if resp.status != 200:
                raise SystemExit("bulk load failed: %s %s" % (resp.status, resp.data[:300]))
    return time.perf_counter() - started


class Seeder(object):
    """Creates objects on the real kube-apiserver the way controllers would have left them.

    Requests go straight to kube-apiserver (the admin ServiceAccount token of RealServer's token kubeconfig), not
    through the counting proxy, over kept-alive connections from a few threads. Each object is one POST by its
    creator's field manager; where its kind has a status subresource (VirtualMachine, Service) the status is then
    written with a PUT to /status (a create ignores it there) by the controller that writes it, re-read and retried
    on 409; VirtualMachineInstances (no status subresource in KubeVirt's CRD) are created by virt-controller with
    its part of the status and then updated by virt-handler with the rest (interfaces, guest OS, volumes...), so
    managedFields hold both managers as on a real cluster. Admission webhooks (our KubeVirt simulation's) see every
    create."""

    def __init__(self, server, workers=SEED_WORKERS):
        kubeconfig = yaml.safe_load(Path(server.token_kubeconfig).read_text())
        cluster = kubeconfig["clusters"][0]["cluster"]
        self.url = cluster["server"].rstrip("/")
        ca_file = Path(server.workdir) / "seed-ca.crt"
        ca_file.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        self.headers = {"Authorization": "Bearer " + kubeconfig["users"][0]["user"]["token"],
                        "Content-Type": "application/json", "Accept": "application/json"}
        self.pool = urllib3.PoolManager(ca_certs=str(ca_file), maxsize=workers, block=True,
                                        retries=urllib3.Retry(total=5, connect=5, read=0, status=0, backoff_factor=0.2))
        self.workers = workers
        self._kinds = {}
        self._lock = threading.Lock()

    def call(self, method, path, body=None):
        resp = self.pool.request(method, self.url + path, body=None if body is None else json.dumps(body),
                                 headers=self.headers, timeout=120)
        try:
            doc = json.loads(resp.data) if resp.data else None
        except ValueError:
            doc = resp.data[:300]
        return resp.status, doc

    def resource(self, api_version, kind):
        """(collection path without namespace part, namespaced, has /status) from API discovery, cached per kind."""
        key = (api_version, kind)
        with self._lock:
            if key not in self._kinds:
                base = ("/apis/" if "/" in api_version else "/api/") + api_version
                status, doc = self.call("GET", base)
                if status != 200:
                    raise SystemExit("discovery of %s failed: %s %s" % (base, status, doc))
                names = set(r["name"] for r in doc["resources"])
                res = next(r for r in doc["resources"] if r["kind"] == kind and "/" not in r["name"])
                self._kinds[key] = (base, res["name"], res["namespaced"], res["name"] + "/status" in names)
            return self._kinds[key]

    def collection(self, obj):
        base, plural, namespaced, has_status = self.resource(obj["apiVersion"], obj["kind"])
        if namespaced:
            base += "/namespaces/" + obj["metadata"].get("namespace", "default")
        return base + "/" + plural, has_status

    def create(self, obj):
        """POST by the kind's creator, then the status written by the component that writes it, so the stored
        managedFields have the managers and field sets a real cluster's objects have (see MANAGERS)."""
        path, has_status = self.collection(obj)
        creator, status_writer = MANAGERS.get(obj["kind"], ("kubectl-create", "kube-controller-manager"))
        status = obj.get("status")
        handler = HANDLER_STATUS.get(obj["kind"], ())
        if has_status:
            body = dict((k, v) for k, v in obj.items() if k != "status")
        elif status and handler:
            # No status subresource (VMIs): virt-controller creates the object with its part of the status, and
            # virt-handler then updates the object with the fields it reports from the node and the guest.
            body = dict(obj, status=dict((k, v) for k, v in status.items() if k not in handler))
        else:
            body = obj
        code, stored = self.call("POST", path + "?fieldManager=" + creator, body)
        if code == 409:
            return False
        if code != 201:
            raise SystemExit("creating %s %s/%s failed: %s %s" % (
                obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"], code, stored))
        if status and stored.get("status") != status and (has_status or handler):
            item = path + "/" + obj["metadata"]["name"]
            target = item + ("/status?fieldManager=" + status_writer if has_status else "?fieldManager=virt-handler")
            for _attempt in range(5):
                code, doc = self.call("PUT", target, dict(stored, status=status))
                if code == 200:
                    break
                if code != 409:
                    raise SystemExit("status of %s: %s %s" % (item, code, doc))
                code, stored = self.call("GET", item)
            else:
                raise SystemExit("status of %s: conflicts on every attempt" % item)
        return True

    def create_all(self, objects):
        cluster_scoped = [o for o in objects if not self.resource(o["apiVersion"], o["kind"])[2]]
        namespaced = [o for o in objects if self.resource(o["apiVersion"], o["kind"])[2]]
        with ThreadPoolExecutor(self.workers) as executor:
            for batch in (cluster_scoped, namespaced):
                list(executor.map(self.create, batch))

    def count(self, path):
        code, doc = self.call("GET", path + "?limit=1")
        if code != 200:
            return 0
        return len(doc.get("items") or ()) + int(doc["metadata"].get("remainingItemCount") or 0)

    def wait_settled(self, services, timeout=None):
        """kube-controller-manager writes an Endpoints object and an EndpointSlice for every Service with a
        selector; wait until it has, so that its work does not fall into the measured runs."""
        deadline = time.monotonic() + (timeout or 120 + services / 20.0)
        while time.monotonic() < deadline:
            if (self.count("/api/v1/endpoints") >= services
                    and self.count("/apis/discovery.k8s.io/v1/endpointslices") >= services):
                break
            time.sleep(1)
        else:
            print("WARNING: kube-controller-manager has not caught up with %d Services" % services, file=sys.stderr)
        time.sleep(2)
