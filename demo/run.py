"""`make demo`: the main job against the embedded Kubernetes API emulator.

Starts the emulator (simulated virt-operator, CDI and virt-controller), installs KubeVirt + CDI from the local
operator manifests with playbooks/install_kubevirt.yml, declares a fleet of VMs with one kubevirt_vm task, prints the
inventory graph of the running VMs, and stops the emulator. Guests are simulated; booting real QEMU guests and
configuring them over SSH is not part of this demo yet.
"""
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.kubeapi.harness import Emulator  # noqa: E402  pylint: disable=wrong-import-position

BIN = Path(sys.executable).parent
FIXTURES = REPO / "tests" / "fixtures" / "install"


def run(cmd, env, cwd):
    print("\n$ " + " ".join(str(c) for c in cmd), flush=True)
    proc = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, check=False)
    if proc.returncode:
        raise SystemExit("demo step failed (exit %d): %s" % (proc.returncode, " ".join(str(c) for c in cmd)))


def main():
    with tempfile.TemporaryDirectory(prefix="virtfleet-demo-") as tmp:
        emu = Emulator(Path(tmp), controllers=("virt", "cdi", "operators"), timing="fast")
        emu.start()
        try:
            print("Kubernetes API emulator on %s (kubeconfig %s)" % (emu.url, emu.kubeconfig), flush=True)
            env = emu.env()
            env.update({"ANSIBLE_COLLECTIONS_PATH": str(REPO / ".build" / "collections"),
                        "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
                        "ANSIBLE_LOCAL_TEMP": str(Path(tmp) / "ansible-tmp")})
            python = ["-e", "ansible_python_interpreter=%s" % sys.executable]
            run([BIN / "ansible-playbook", "-i", "localhost,", *python,
                 "-e", "kubevirt_manifest_path=%s" % (FIXTURES / "kubevirt-v1.9.0" / "kubevirt-operator.yaml"),
                 "-e", "kubevirt_version=v1.9.0", "-e", "kubevirt_cdi=true",
                 "-e", "kubevirt_cdi_manifest_path=%s" % (FIXTURES / "cdi-v1.66.0" / "cdi-operator.yaml"),
                 REPO / "playbooks" / "install_kubevirt.yml"], env, tmp)
            emu.apply_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}})
            run([BIN / "ansible-playbook", "-i", "localhost,", *python, REPO / "demo" / "fleet.yml"], env, tmp)
            run([BIN / "ansible-inventory", "-i", REPO / "demo" / "kubevirt.yml", "--graph"], env, tmp)
            print("\n%d HTTP requests reached the API in the whole demo." % len(emu.requests()))
        finally:
            emu.stop()


if __name__ == "__main__":
    main()
