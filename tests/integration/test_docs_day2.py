"""docs/day-2.md section 1, run as written: the change with a snapshot and a rollback.

The playbook is the doc's yaml block, written byte for byte and run with the doc's command line (only health_url and
web_namespace given with -e). Three running VMs of the tier: a change whose check fails is rolled back (the VMs'
VMI template as before the change, running again, the play failed and said what it rolled back); then the
same change with a check that passes stays, and a re-run of it changes nothing and writes nothing.
"""
import http.server
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import kubeapi_env
from tests.integration.conftest import assert_no_deprecation, unique_namespace, vm_manifest
from tests.integration.doc_blocks import commands, files, section

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "day-2.md"
BIN = Path(sys.executable).parent
VM_PATH = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachines/%s"
VMI_PATH = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances/%s"
WRITES = ("POST", "PUT", "PATCH", "DELETE")
NAMES = ("web-1", "web-2", "web-3")


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def health():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d/healthz" % server.server_address[1]
    server.shutdown()


def doc_play(tmp_path):
    text = section(DOC.read_text(), "## 1. A change with a snapshot and a rollback", where="docs/day-2.md")
    written = files(text, ["change-web-tier.yml"], where="docs/day-2.md section 1")
    (tmp_path / "change-web-tier.yml").write_text(written["change-web-tier.yml"])
    runs = [words for words in commands(text, where="docs/day-2.md section 1") if words[0] == "ansible-playbook"]
    assert len(runs) == 1, runs
    return runs[0]


def run(words, tmp_path, env, *extra):
    cmd = [str(BIN / words[0])] + list(words[1:]) + list(extra)
    env = dict(env, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_DEPRECATION_WARNINGS="1",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    proc = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=600, check=False)
    out = proc.stdout + proc.stderr
    assert_no_deprecation(out)
    return proc.returncode, out


def recap_changed(out):
    match = re.search(r"^localhost\s+: ok=\d+\s+changed=(\d+)\s", out, re.M)
    assert match, out
    return int(match.group(1))


def wait_running(kubeapi, ns, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        vmis = [kubeapi.get_object(VMI_PATH % (ns, n)) for n in NAMES]
        if all(v and (v.get("status") or {}).get("phase") == "Running" for v in vmis):
            return
        time.sleep(0.2)
    pytest.fail("the tier's VMIs did not run")


def test_the_documented_change_is_rolled_back_when_its_check_fails_and_kept_when_it_passes(kubeapi, tmp_path, health):
    words = doc_play(tmp_path)
    ns = unique_namespace(kubeapi, "day2doc")
    for name in NAMES:
        kubeapi.apply_object(vm_manifest(name, ns, labels={"tier": "web"}))
    wait_running(kubeapi, ns)
    before = {n: kubeapi.get_object(VM_PATH % (ns, n)) for n in NAMES}
    env = kubeapi_env(kubeapi)
    ns_arg = "web_namespace=%s" % ns

    # 1. The check fails (nothing listens on port 9): the tier is rolled back and the job fails, saying so.
    rc, out = run(words, tmp_path, env, "-e", ns_arg, "-e", "health_url=http://127.0.0.1:9/healthz")
    assert rc != 0, out
    assert "Change chg-1234 failed" in out and "rolled back: web-1, web-2, web-3" in out, out
    for name in NAMES:
        vm = kubeapi.get_object(VM_PATH % (ns, name))
        assert vm["spec"]["template"] == before[name]["spec"]["template"], vm["spec"]
        assert vm["metadata"]["annotations"]["restore.kubevirt.io/lastRestoreUID"].startswith(name)
        assert vm["spec"]["runStrategy"] == "Always", vm["spec"]
    wait_running(kubeapi, ns)

    # 2. The same change with a check that passes: it stays (the snapshot is not taken again).
    rc, out = run(words, tmp_path, env, "-e", ns_arg, "-e", "health_url=%s" % health)
    assert rc == 0, out
    for name in NAMES:
        vm = kubeapi.get_object(VM_PATH % (ns, name))
        domain = vm["spec"]["template"]["spec"]["domain"]
        assert domain["memory"]["guest"] == "2Gi" and domain["cpu"]["cores"] == 2, domain
    snaps = kubeapi.get_object("/apis/snapshot.kubevirt.io/v1beta1/namespaces/%s/virtualmachinesnapshots" % ns)
    assert sorted(s["metadata"]["name"] for s in snaps["items"]) == ["%s-chg-1234" % n for n in NAMES]

    # 3. The re-run changes nothing and sends no write.
    mark = kubeapi.mark()
    rc, out = run(words, tmp_path, env, "-e", ns_arg, "-e", "health_url=%s" % health)
    assert rc == 0, out
    assert recap_changed(out) == 0, out
    assert [(e["method"], e["path"]) for e in kubeapi.requests(since=mark) if e["method"] in WRITES] == []
    assert shlex.join(words).startswith("ansible-playbook change-web-tier.yml")
