"""Start/stop the emulator as a subprocess and talk to its /_emulator hooks (see the emulator contract).

    emu = Emulator(workdir, tls=True, controllers=("virt",), timing="fast")
    emu.start(); emu.url; emu.kubeconfig; emu.ca_file; emu.admin_token
    emu.add_token("t1", namespaces=["ns1"]); emu.client_cert("alice") -> (cert_path, key_path)
    emu.requests(since=emu.mark()); emu.set_faults(rate=1, statuses=(500,)); emu.clear_faults()
    emu.apply_object(obj); emu.get_object(path); emu.delete_object(path); emu.stop()
"""
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


class EmulatorError(RuntimeError):
    pass


class Emulator:
    def __init__(self, workdir, tls=True, controllers=("virt",), timing="fast", rbac=None, extra_args=(),
                 nodes=None, api_dir=None, guest_images=None):
        self.workdir = Path(workdir)
        self.tls = tls
        self.controllers = tuple(controllers or ())
        self.timing = timing
        self.rbac = rbac
        self.extra_args = list(extra_args)
        self.nodes = nodes
        self.api_dir = api_dir
        # {"quay.io/containerdisks/debian:12": ".build/guest-image"}: those VMIs boot as real QEMU guests.
        self.guest_images = dict(guest_images or {})
        self.proc = None
        self.url = None
        self.kubeconfig = self.workdir / "kubeconfig"
        self.ca_file = self.workdir / "ca.crt"
        self.admin_token = None
        self._ssl = None
        self._log = None

    # --- lifecycle -----------------------------------------------------------------------------------------
    def start(self, timeout=30):
        self.workdir.mkdir(parents=True, exist_ok=True)
        # The tests' own interpreter (Python 3.11 for ansible-core 2.16-2.19, 3.12 for 2.20+): every virtualenv that
        # runs the tests has what the emulator needs (PyYAML, cryptography), so no other virtualenv is needed.
        cmd = [sys.executable, "-m", "tests.kubeapi", "--port", "0", "--kubeconfig", str(self.kubeconfig),
               "--timing", str(self.timing), "--controllers", ",".join(self.controllers) or "none"]
        if not self.tls:
            cmd.append("--no-tls")
        if self.api_dir:
            cmd += ["--api-dir", str(self.api_dir)]
        if self.nodes:
            cmd += ["--nodes", str(self.nodes)]
        if self.rbac:
            rbac_file = self.workdir / "rbac.yaml"
            rbac_file.write_text(yaml.safe_dump(list(self.rbac)))
            cmd += ["--rbac", str(rbac_file)]
        for image, path in self.guest_images.items():
            cmd += ["--guest-image", "%s=%s" % (image, path), "--guest-workdir", str(self.workdir / "guests")]
        cmd += self.extra_args
        self._log = open(self.workdir / "kubeapi.log", "w")
        self.proc = subprocess.Popen(cmd, cwd=str(REPO), stdout=subprocess.PIPE, stderr=self._log, text=True)
        ready = {}

        def reader():
            for line in self.proc.stdout:
                if line.startswith("kubeapi ready on ") and "url" not in ready:
                    ready["url"] = line.split()[-1]
                self._log.write(line)
                self._log.flush()
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        deadline = time.monotonic() + timeout
        while "url" not in ready:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise EmulatorError("kubeapi emulator did not start; see %s" % (self.workdir / "kubeapi.log"))
            time.sleep(0.05)
        self.url = ready["url"]
        kc = yaml.safe_load(self.kubeconfig.read_text())
        self.admin_token = kc["users"][0]["user"]["token"]
        if self.tls:
            self._ssl = ssl.create_default_context(cafile=str(self.ca_file))
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.guest_images:
            stop_guest_leftovers(self.workdir / "guests")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def env(self, base=None):
        """Environment for subprocesses (ansible-playbook, kubectl) that should talk to this server."""
        return cluster_env(self.kubeconfig, base)

    # --- raw HTTP ------------------------------------------------------------------------------------------
    def http(self, method, path, body=None, token=None, content_type="application/json", headers=None):
        """(status, parsed JSON body or text, headers) for one request; no exception on HTTP errors."""
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if token or self.admin_token:   # else the client certificate in the ssl context (ExternalCluster)
            req.add_header("Authorization", "Bearer " + (token or self.admin_token))
        if data is not None:
            req.add_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, context=self._ssl, timeout=30) as resp:
                raw, status, hdrs = resp.read(), resp.status, resp.headers
        except urllib.error.HTTPError as exc:
            raw, status, hdrs = exc.read(), exc.code, exc.headers
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return status, parsed, hdrs

    def _shortcut(self, method, path, body=None, content_type="application/json"):
        """An admin request of the harness itself: logged, but exempt from injected faults."""
        return self.http(method, path, body, content_type=content_type, headers={"X-Kubeapi-Harness": "true"})

    def _hook(self, method, path, body=None):
        status, doc, _ = self.http(method, "/_emulator/" + path, body)
        if status != 200:
            raise EmulatorError("hook %s %s failed: %s %s" % (method, path, status, doc))
        return doc

    # --- hooks ---------------------------------------------------------------------------------------------
    def requests(self, since=None):
        q = "?since=%d" % since if since else ""
        return self._hook("GET", "requests" + q)["items"]

    def mark(self):
        return self._hook("GET", "mark")["mark"]

    def reset_requests(self):
        self._hook("DELETE", "requests")

    def set_faults(self, rate=0.1, statuses=(500, 429), reset=False, latency_ms=0, path_regex=None, count=None,
                   seed=1, methods=None, after_commit=0.0, watch_only=False):
        return self._hook("PUT", "faults", {"rate": rate, "statuses": list(statuses), "reset": reset,
                                            "latency_ms": latency_ms, "path_regex": path_regex, "count": count,
                                            "seed": seed, "methods": methods, "after_commit": after_commit,
                                            "watch_only": watch_only})

    def clear_faults(self):
        self._hook("DELETE", "faults")

    def add_token(self, token, namespaces=(), verbs=None, cluster_wide_read=False, user=None, resources=None,
                  cluster_wide=False):
        spec = {"token": token, "user": user or token, "namespaces": list(namespaces),
                "verbs": list(verbs) if verbs else None, "cluster_wide_read": cluster_wide_read,
                "resources": list(resources) if resources else None, "cluster_wide": cluster_wide}
        return self._hook("PUT", "tokens", spec)

    def client_cert(self, user, groups=()):
        doc = self._hook("POST", "client-certs", {"user": user, "groups": list(groups)})
        safe = "".join(c if c.isalnum() else "_" for c in user)
        cert, key = self.workdir / ("client-%s.crt" % safe), self.workdir / ("client-%s.key" % safe)
        cert.write_text(doc["cert"])
        key.write_text(doc["key"])
        os.chmod(key, 0o600)
        return cert, key

    def compact(self):
        return self._hook("POST", "compact")

    def kubeconfig_for(self, token=None, cert=None, path=None):
        """A kubeconfig like the admin one but authenticating with `token` or a (cert, key) pair."""
        kc = yaml.safe_load(self.kubeconfig.read_text())
        if cert is not None:
            kc["users"][0]["user"] = {"client-certificate": str(cert[0]), "client-key": str(cert[1])}
            tag = "cert-" + Path(cert[0]).stem
        else:
            kc["users"][0]["user"] = {"token": token}
            tag = "".join(c for c in token if c.isalnum())[:40]
        path = Path(path or self.workdir / ("kubeconfig-%s" % tag))
        path.write_text(yaml.safe_dump(kc))
        os.chmod(path, 0o600)
        return path

    # --- admin shortcuts -----------------------------------------------------------------------------------
    def api_path(self, obj):
        api_version, kind = obj["apiVersion"], obj["kind"]
        meta = obj.get("metadata") or {}
        group, _, version = api_version.rpartition("/")
        base = "/apis/%s/%s" % (group, version) if group else "/api/" + version
        status, doc, _ = self._shortcut("GET", base)
        if status != 200:
            raise EmulatorError("unknown apiVersion %s (GET %s: %s %s)" % (api_version, base, status, str(doc)[:300]))
        res = next((r for r in doc["resources"] if r["kind"] == kind and "/" not in r["name"]), None)
        if res is None:
            raise EmulatorError("unknown kind %s in %s" % (kind, api_version))
        path = base
        if res["namespaced"]:
            path += "/namespaces/" + (meta.get("namespace") or "default")
        return path + "/" + res["name"]

    def apply_object(self, obj, field_manager="kubeapi-harness", force=True):
        """Server-side apply as admin; returns the stored object."""
        path = self.api_path(obj) + "/" + obj["metadata"]["name"]
        q = "?fieldManager=%s&force=%s" % (urllib.parse.quote(field_manager), "true" if force else "false")
        status, doc, _ = self._shortcut("PATCH", path + q, obj, content_type="application/apply-patch+yaml")
        if status not in (200, 201):
            raise EmulatorError("apply failed: %s %s" % (status, doc))
        return doc

    def get_object(self, api_path):
        status, doc, _ = self._shortcut("GET", api_path)
        if status == 404:
            return None
        if status != 200:
            raise EmulatorError("GET %s failed: %s %s" % (api_path, status, doc))
        return doc

    def delete_object(self, api_path):
        status, doc, _ = self._shortcut("DELETE", api_path)
        if status not in (200, 202, 404):
            raise EmulatorError("DELETE %s failed: %s %s" % (api_path, status, doc))
        return doc if status != 404 else None

    def wait_for(self, api_path, predicate, timeout=15, interval=0.05):
        """Poll GET api_path until predicate(obj) is true; returns the object (None obj allowed)."""
        deadline = time.monotonic() + timeout
        obj = None
        while time.monotonic() < deadline:
            obj = self.get_object(api_path)
            if predicate(obj):
                return obj
            time.sleep(interval)
        raise EmulatorError("timed out waiting on %s; last state: %s" % (api_path, json.dumps(obj)[:2000]))


def qemu_pids(guest_dir, vm_name=None):
    """{guest dir name: pid} of QEMU processes a real-guest emulator started (from its pid files) that still run."""
    alive = {}
    for pid_file in Path(guest_dir).glob("*/pid"):
        if vm_name and not pid_file.parent.name.split("_")[1] == vm_name:
            continue
        pid = int(pid_file.read_text())
        try:
            cmdline = Path("/proc/%d/cmdline" % pid).read_bytes()
        except OSError:
            continue
        if b"qemu-system" in cmdline:
            alive[pid_file.parent.name] = pid
    return alive


def stop_guest_leftovers(guest_dir):
    """Kill QEMU process groups a real-guest emulator left behind (it was killed before it could stop them)."""
    for pid in qemu_pids(guest_dir).values():
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def cluster_env(kubeconfig, base=None):
    env = dict(os.environ if base is None else base)
    env["K8S_AUTH_KUBECONFIG"] = str(kubeconfig)
    env["KUBECONFIG"] = str(kubeconfig)
    env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO / ".build" / "collections")
    return env


class ApiLoader:
    """Loading objects the way a client must on a real API server (mixed into RealServer and ExternalCluster):
    namespaces created first, statuses written through /status."""

    def apply_object(self, obj, field_manager="kubeapi-harness", force=True):
        """As the emulator's shortcut, which stores objects in a namespace nobody created: create that first."""
        ns = (obj.get("metadata") or {}).get("namespace")
        if ns and obj.get("kind") != "Namespace" and self.get_object("/api/v1/namespaces/%s" % ns) is None:
            self.apply_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        return super().apply_object(obj, field_manager=field_manager, force=force)

    def _bulk(self, objects):
        """Create objects one by one (statuses through /status where the kind has it, else with the object)."""
        created = 0
        for obj in objects:
            obj = json.loads(json.dumps(obj))
            status = obj.get("status")
            stored = self.apply_object(dict((k, v) for k, v in obj.items() if k != "status"))
            if status:
                self._put_status(obj, stored, status)
            created += 1
        return {"created": created}

    def _put_status(self, obj, stored, status):
        """Write ``status`` (through /status where the kind has it); re-read on 409: controllers of the real server
        (the node lifecycle controller, say) change objects right after they are created."""
        path = self.api_path(obj) + "/" + obj["metadata"]["name"]
        for _attempt in range(5):
            body = dict(stored, status=status)
            code, doc, _ = self._shortcut("PUT", path + "/status", body)
            if code == 404:     # no status subresource (VirtualMachineInstance): the status goes with the object
                code, doc, _ = self._shortcut("PUT", path, body)
            if code in (200, 201):
                return doc
            if code != 409:
                break
            stored = self.get_object(path)
        raise EmulatorError("status of %s: %s %s" % (path, code, doc))


class ExternalCluster(ApiLoader, Emulator):
    """Stands in for Emulator when VIRTFLEET_TEST_KUBECONFIG points the tests at a cluster of the user's (real
    KubeVirt, say): the admin shortcuts and bulk loads go through its API with the kubeconfig's credentials; the
    hooks only our simulation has (request log, faults, test users, compaction) skip the calling test. Namespaces
    the tests create are deleted at the end of the session."""

    def __init__(self, kubeconfig):  # pylint: disable=super-init-not-called
        from .proxy import Upstream   # the proxy's reading of a kubeconfig: address, TLS context, credentials
        self.kubeconfig = Path(kubeconfig)
        try:
            upstream = Upstream(self.kubeconfig)
        except (ValueError, KeyError, StopIteration, OSError) as exc:
            raise EmulatorError(
                "VIRTFLEET_TEST_KUBECONFIG=%s: %s. The test harness needs a token or client-certificate kubeconfig "
                "(flatten an exec-plugin one with kubectl config view --minify --flatten after logging in, or use a "
                "ServiceAccount token)" % (self.kubeconfig, exc or type(exc).__name__))
        self.url, self._ssl, self.admin_token = "https://" + upstream.netloc, upstream.ssl, upstream.token
        self.ca_file = None
        self.workdir = self.kubeconfig.parent
        self.controllers = ("virt",)
        self.guest_images = {}
        self._namespaces = []

    def start(self, timeout=30):
        return self

    def stop(self):
        pass

    def cleanup(self):
        for name in reversed(self._namespaces):
            self.delete_object("/api/v1/namespaces/" + name)
        self._namespaces = []

    def apply_object(self, obj, field_manager="kubeapi-harness", force=True):
        if obj.get("kind") == "Namespace" and self.get_object("/api/v1/namespaces/" + obj["metadata"]["name"]) is None:
            self._namespaces.append(obj["metadata"]["name"])
        return super().apply_object(obj, field_manager=field_manager, force=force)

    def _hook(self, method, path, body=None):
        what = path.split("?")[0].split("/")[0]
        if what == "bulk":
            return self._bulk((body or {}).get("objects") or [])
        skip_external("the %s hook" % what)

    def kubeconfig_for(self, token=None, cert=None, path=None):
        skip_external("kubeconfigs of test users")

    def clear_faults(self):
        """Nothing was injected (set_faults skipped the test): fixtures may clear faults in their teardown."""


def skip_external(what):
    import pytest
    pytest.skip("needs %s of our KubeVirt simulation; VIRTFLEET_TEST_KUBECONFIG points at a cluster without it" % what)
