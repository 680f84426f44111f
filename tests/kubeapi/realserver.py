"""The test harness' Emulator interface on a real control plane: kube-apiserver + etcd + kube-controller-manager.

``RealServer`` starts, in its work directory:
- realk8s (``$VIRTFLEET_REALK8S/realk8s.sh``, default ``../shared/realk8s`` beside the repository) with the KubeVirt and
  CDI CRDs of tests/fixtures/kubevirt-api;
- our KubeVirt simulation as a client of that server (``tests.kubeapi.remote``: the emulator's controllers, virt-api's
  subresources as an aggregated API, the admission webhooks);
- our TLS proxy in front of it (``tests.kubeapi.proxy``): the request log and injected faults of the emulator's hooks.
Tests get the proxy's kubeconfig. Test users' tokens and client certificates are the proxy's (it impersonates their
users upstream, where RBAC objects give them their rights). The one hook a real server cannot offer, watch-cache
compaction on demand, skips the calling test with the reason.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from .harness import REPO, ApiLoader, Emulator, EmulatorError
from .util import wait_for_signal

API_DIR = REPO / "tests" / "fixtures" / "kubevirt-api"


def realk8s_dir():
    """Where realk8s.sh and its binaries are: $VIRTFLEET_REALK8S, else ../shared/realk8s beside the repository."""
    return Path(os.environ.get("VIRTFLEET_REALK8S") or REPO.parent / "shared" / "realk8s")


def available():
    return (realk8s_dir() / "realk8s.sh").is_file()


class RealServer(ApiLoader, Emulator):
    """Emulator's interface (hooks included, where a real server allows) on realk8s. Same constructor arguments."""

    def __init__(self, workdir, tls=True, controllers=("virt",), timing="fast", rbac=None, extra_args=(),
                 nodes=None, api_dir=None, guest_images=None):
        super().__init__(workdir, tls=True, controllers=controllers, timing=timing, rbac=rbac, extra_args=extra_args,
                         nodes=nodes, api_dir=api_dir, guest_images=guest_images)
        self.cluster_dir = self.workdir / "realk8s"
        self.upstream_kubeconfig = self.cluster_dir / "kubeconfig"
        self._procs = []

    # --- lifecycle -----------------------------------------------------------------------------------------
    def start(self, timeout=120):
        script = realk8s_dir() / "realk8s.sh"
        if not script.is_file():
            raise EmulatorError("realk8s not found at %s: set VIRTFLEET_REALK8S to the folder holding realk8s.sh and "
                                "its bin/ (kube-apiserver, etcd, kube-controller-manager)" % script.parent)
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.workdir / "realk8s.log"
        with open(log, "w") as out:
            for args in (["up", str(self.cluster_dir)], ["crds", str(self.cluster_dir), str(self.api_dir or API_DIR)]):
                proc = subprocess.run(["bash", str(script)] + args, stdout=out, stderr=subprocess.STDOUT, timeout=timeout,
                                      check=False)
                if proc.returncode != 0:
                    self.stop()
                    raise EmulatorError("realk8s %s failed; see %s" % (args[0], log))
        try:
            self._admin_token_kubeconfig()
            remote = self._spawn("remote", [sys.executable, "-m", "tests.kubeapi.remote", "--kubeconfig",
                                            str(self.upstream_kubeconfig), "--controllers",
                                            ",".join(self.controllers) or "none", "--timing", str(self.timing)]
                                 + (["--nodes", str(self.nodes)] if self.nodes else []), timeout)
            proxy = self._spawn("proxy", [sys.executable, "-m", "tests.kubeapi.proxy", "--kubeconfig",
                                          str(self.token_kubeconfig), "--out-kubeconfig", str(self.kubeconfig)],
                                timeout)
        except EmulatorError:
            self.stop()
            raise
        self.remote_info, self.proxy_info = remote, proxy
        self.url = proxy["url"]
        kc = yaml.safe_load(self.kubeconfig.read_text())
        user = kc["users"][0]["user"]
        self.admin_token = user.get("token")
        self.ca_file = Path(proxy.get("ca_file") or self.workdir / "proxy-ca.crt")
        import ssl
        self._ssl = ssl.create_default_context(cafile=str(self.ca_file))
        for rule in self.rbac or ():
            self.add_token(**rule)
        return self

    def _kubectl(self, *args, **kwargs):
        return subprocess.run(["kubectl", "--kubeconfig", str(self.upstream_kubeconfig)] + list(args),
                              capture_output=True, text=True, timeout=60, check=True, **kwargs).stdout

    def _admin_token_kubeconfig(self):
        """The harness speaks bearer tokens (per-test users too): an admin ServiceAccount bound to cluster-admin."""
        self._kubectl("-n", "kube-system", "create", "serviceaccount", "virtfleet-test-admin")
        self._kubectl("create", "clusterrolebinding", "virtfleet-test-admin", "--clusterrole=cluster-admin",
                      "--serviceaccount=kube-system:virtfleet-test-admin")
        token = self._kubectl("-n", "kube-system", "create", "token", "virtfleet-test-admin", "--duration=24h").strip()
        kc = yaml.safe_load(self.upstream_kubeconfig.read_text())
        kc["users"][0]["user"] = {"token": token}
        self.token_kubeconfig = self.cluster_dir / "token.kubeconfig"
        self.token_kubeconfig.write_text(yaml.safe_dump(kc))
        os.chmod(self.token_kubeconfig, 0o600)

    def _spawn(self, name, cmd, timeout):
        out = open(self.workdir / ("%s.log" % name), "w")
        proc = subprocess.Popen(cmd, cwd=str(REPO), stdout=subprocess.PIPE, stderr=out, text=True,
                                start_new_session=True)
        self._procs.append((proc, out))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                if proc.poll() is not None:
                    break
                continue
            out.write(line)
            out.flush()
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict) and (doc.get("ready") or doc.get("url")):
                threading.Thread(target=self._drain, args=(proc.stdout, out), daemon=True).start()
                return doc
        raise EmulatorError("%s did not start; see %s" % (name, self.workdir / ("%s.log" % name)))

    @staticmethod
    def _drain(stream, out):
        """Keep copying a started process' standard output (controller errors) to its log: an unread pipe fills up
        and blocks the process at its next print."""
        try:
            for line in stream:
                out.write(line)
                out.flush()
        except (OSError, ValueError):
            pass

    def stop(self):
        for proc, out in reversed(self._procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(15)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            out.close()
        self._procs = []
        script = realk8s_dir() / "realk8s.sh"
        if script.is_file() and self.cluster_dir.exists():
            subprocess.run(["bash", str(script), "down", str(self.cluster_dir)], capture_output=True, timeout=60,
                           check=False)

    # --- hooks -----------------------------------------------------------------------------------------------
    def _hook(self, method, path, body=None):
        """requests/mark/faults/client-certs go to the proxy (same paths); bulk, tokens and compact are done here;
        guest-ports (the VMI ports a portforward reaches) goes to the remote host, which serves virt-api."""
        what = path.split("?")[0]
        if what == "guest-ports":
            return self._hook_remote(method, path, body)
        if what == "bulk":
            return self._bulk((body or {}).get("objects") or [])
        if what == "tokens":
            specs = body if isinstance(body, list) else [body]
            return {"tokens": [self._token(spec) for spec in specs if spec]}
        if what.startswith("tokens/") and method == "DELETE":
            return self._hook_proxy("DELETE", path)
        if what == "compact":
            return self.compact()
        return self._hook_proxy(method, path, body)

    def _hook_proxy(self, method, path, body=None):
        return super()._hook(method, path, body)

    def _hook_remote(self, method, path, body=None):
        """A hook of the remote host's own HTTPS server (127.0.0.1; its certificate is its private CA's)."""
        import ssl
        import urllib.error
        import urllib.request
        req = urllib.request.Request("https://127.0.0.1:%d/_emulator/%s" % (self.remote_info["port"], path),
                                     data=json.dumps(body).encode() if body is not None else None, method=method,
                                     headers={"Content-Type": "application/json"})
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise EmulatorError("remote hook %s %s failed: %s %s" % (method, path, exc.code, exc.read()[:500]))

    def _token(self, spec):
        """A test user: the proxy maps its token to the user (impersonation); RBAC objects give it the spec's rights."""
        user = spec.get("user") or spec["token"]
        verbs = spec.get("verbs") or ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]
        resources = spec.get("resources") or ["*"]
        rule = {"apiGroups": ["*"], "resources": resources, "verbs": verbs}
        name = "vft-" + "".join(c if c.isalnum() else "-" for c in user.lower())[:50]
        subject = {"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}
        self.apply_object({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                           "metadata": {"name": name}, "rules": [rule]})
        for ns in spec.get("namespaces") or ():
            self.apply_object({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                               "metadata": {"name": name, "namespace": ns}, "subjects": [subject],
                               "roleRef": {"kind": "ClusterRole", "name": name, "apiGroup": "rbac.authorization.k8s.io"}})
        if spec.get("cluster_wide"):
            self.apply_object({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                               "metadata": {"name": name}, "subjects": [subject],
                               "roleRef": {"kind": "ClusterRole", "name": name, "apiGroup": "rbac.authorization.k8s.io"}})
        reads = list(spec.get("cluster_read_resources") or ())
        if spec.get("cluster_wide_read"):
            reads = ["*"]
        if reads:
            self.apply_object({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                               "metadata": {"name": name + "-read"},
                               "rules": [{"apiGroups": ["*"], "resources": reads, "verbs": ["get", "list", "watch"]}]})
            self.apply_object({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                               "metadata": {"name": name + "-read"}, "subjects": [subject],
                               "roleRef": {"kind": "ClusterRole", "name": name + "-read",
                                           "apiGroup": "rbac.authorization.k8s.io"}})
        return self._hook_proxy("PUT", "tokens", {"token": spec["token"], "user": user,
                                                  "groups": list(spec.get("groups") or [])})

    # --- hooks a real server cannot offer ------------------------------------------------------------------
    def compact(self):
        import pytest
        pytest.skip("a real API server's watch cache cannot be compacted on demand (use faults with status 410 and "
                    "watch_only instead)")


def main(argv=None):
    """``python -m tests.kubeapi.realserver DIR``: a real control plane with our KubeVirt simulation, until ^C.

    Prints the kubeconfigs: the proxy's (request log, faults) and the real server's own (client certificate), the
    latter being what ``VIRTFLEET_TEST_KUBECONFIG`` takes to run the suite as against a cluster with KubeVirt."""
    import argparse
    parser = argparse.ArgumentParser(prog="python -m tests.kubeapi.realserver", description=main.__doc__.split("\n")[0])
    parser.add_argument("workdir", help="an empty or new directory for the cluster's files")
    parser.add_argument("--controllers", default="virt,cdi", help="comma list of virt, cdi, operators (default "
                                                                   "virt,cdi)")
    args = parser.parse_args(argv)
    server = RealServer(Path(args.workdir), controllers=[c for c in args.controllers.split(",") if c])
    try:
        server.start()
    except EmulatorError as exc:
        raise SystemExit("realserver: %s" % exc)
    print(json.dumps({"ready": True, "proxy_kubeconfig": str(server.kubeconfig),
                      "kubeconfig": str(server.upstream_kubeconfig)}), flush=True)
    try:
        wait_for_signal()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
