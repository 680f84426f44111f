"""`python -m tests.kubeapi`: run the Kubernetes API emulator (see --help)."""
import argparse
import base64
import errno
import json
import os
import secrets
import signal
import ssl
import sys
import tempfile
import threading
from pathlib import Path

import yaml


# What `make demo` (demo/run.py) runs, so that the README's examples, kubevirt_install included, work on an emulator
# started by hand. The pytest fixtures choose their own (tests/conftest.py: virt only).
DEFAULT_CONTROLLERS = ("virt", "cdi", "operators")
KNOWN_CONTROLLERS = ("virt", "cdi", "operators")   # controllers.start_controllers; gc always runs


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m tests.kubeapi",
        description="Kubernetes API emulator for the virtfleet.kubevirt tests: a real HTTP(S) API server on "
                    "127.0.0.1 with KubeVirt/CDI CRDs, simulated controllers, RBAC tokens, a request log and "
                    "fault injection. Prints 'kubeapi ready on URL' once serving; stops cleanly on SIGTERM.")
    p.add_argument("--port", type=int, default=0, help="TCP port to listen on (0 = pick a free port; default 0)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--kubeconfig", required=True, help="path of the kubeconfig to write (context 'kubeapi', user "
                   "'admin' with the admin bearer token); ca.crt is written beside it")
    p.add_argument("--no-tls", action="store_true", help="serve plain HTTP instead of HTTPS")
    p.add_argument("--api-dir", help="directory with kubevirt-crds.yaml and cdi-crds.yaml (default: "
                   "$VIRTFLEET_KUBEVIRT_API_DIR or <repo>/tests/fixtures/kubevirt-api)")
    p.add_argument("--rbac", help="YAML/JSON file with a list of token specs: {token, user, namespaces, verbs, "
                   "cluster_wide_read, resources}")
    p.add_argument("--faults", help="fault config as a JSON string or a file: {rate, statuses, reset, latency_ms, "
                   "path_regex, methods, count, seed}")
    p.add_argument("--controllers", default=",".join(DEFAULT_CONTROLLERS), help="comma-separated simulated "
                   "controllers: virt (virt-controller, virt-handler, virt-api subresources and webhooks), cdi "
                   "(DataVolumes), operators (virt-operator and cdi-operator, for kubevirt_install), or 'none'; the "
                   "garbage collector always runs (default: %(default)s, what the demo runs)")
    p.add_argument("--timing", default="fast", type=_timing, help="controller step delay: fast (0.15 s per "
                   "transition), normal (1 s) or a number of seconds (e.g. 0.01 for large benchmarks)")
    p.add_argument("--nodes", type=int, default=2, help="number of seeded Ready nodes node01..nodeNN (default 2)")
    p.add_argument("--admin-token", help="admin bearer token (default: random)")
    p.add_argument("--history", type=int, default=200000, help="watch events kept per resource before a watch "
                   "from an older resourceVersion gets 410 Gone (default 200000)")
    p.add_argument("--guest-image", action="append", default=[], metavar="IMAGE=DIR", help="boot VMIs whose boot "
                   "disk is this containerDisk (or DataVolume registry) image as real QEMU TCG guests from the image "
                   "DIR built by tests/guest/build_image.sh (repeatable; see controllers/realguest.py)")
    p.add_argument("--guest-workdir", help="where real guests keep seed disks and console logs (default: "
                   "'guests' beside the kubeconfig)")
    args = p.parse_args(argv)
    unknown = sorted(set(n.strip() for n in args.controllers.split(",")) - set(KNOWN_CONTROLLERS) - {"", "none"})
    if unknown:
        p.error("--controllers: unknown %s (known: %s, or none)" % (", ".join(unknown), ", ".join(KNOWN_CONTROLLERS)))
    return args


def _timing(text):
    if text in ("fast", "normal"):
        return text
    try:
        if float(text) >= 0:
            return text
    except ValueError:
        pass
    raise argparse.ArgumentTypeError("--timing must be fast, normal or a number of seconds >= 0, got %r" % text)


def _load_faults(text):
    if os.path.exists(text):
        with open(text) as fh:
            return yaml.safe_load(fh)
    return json.loads(text)


def _listen_error(exc, host, port):
    """One line for a port the emulator cannot listen on (no traceback)."""
    if exc.errno == errno.EADDRINUSE:
        return ("kubeapi: port %d on %s is in use (another emulator?): stop it or choose --port 0 for a free port"
                % (port, host))
    if exc.errno == errno.EACCES:
        return ("kubeapi: port %d on %s needs privileges (ports below 1024): choose another --port, or --port 0 for "
                "a free port" % (port, host))
    return "kubeapi: cannot listen on %s port %d: %s (check --host and --port)" % (host, port, exc.strerror or exc)


def main(argv=None):
    args = parse_args(argv)
    from .app import App, default_api_dir
    from .controllers import start_controllers
    from .server import make_server
    from .tls import CertificateAuthority

    token = args.admin_token or secrets.token_urlsafe(24)
    ca = CertificateAuthority()
    app = App(token, ca=ca, timing=args.timing, history=args.history)
    app.load_crds(args.api_dir or default_api_dir())
    app.seed(nodes=args.nodes)
    if args.rbac:
        with open(args.rbac) as fh:
            for spec in yaml.safe_load(fh) or []:
                app.authz.add(spec)
    if args.faults:
        app.faults.configure(**_load_faults(args.faults))

    ctx = None
    kc_path = Path(args.kubeconfig).resolve()
    kc_path.parent.mkdir(parents=True, exist_ok=True)
    if not args.no_tls:
        cert, key = ca.issue("kubeapi-emulator", server_hosts=[args.host, "localhost", "127.0.0.1"])
        tmp = tempfile.mkdtemp(prefix="kubeapi-tls-")
        cf, kf = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        with open(cf, "wb") as fh:
            fh.write(cert)
        with open(kf, "wb") as fh:
            fh.write(key)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cf, kf)
        ctx.load_verify_locations(cadata=ca.cert_pem.decode())
        ctx.verify_mode = ssl.CERT_OPTIONAL
        os.unlink(cf)
        os.unlink(kf)
        os.rmdir(tmp)
    try:
        server = make_server(app, args.host, args.port, ctx)
    except OSError as exc:
        print(_listen_error(exc, args.host, args.port), file=sys.stderr, flush=True)
        return 2
    (kc_path.parent / "ca.crt").write_bytes(ca.cert_pem)
    port = server.server_address[1]
    url = "%s://%s:%d" % ("http" if args.no_tls else "https", args.host, port)
    cluster = {"server": url}
    if not args.no_tls:
        cluster["certificate-authority-data"] = base64.b64encode(ca.cert_pem).decode()
    kubeconfig = {"apiVersion": "v1", "kind": "Config", "preferences": {},
                  "clusters": [{"name": "kubeapi", "cluster": cluster}],
                  "users": [{"name": "admin", "user": {"token": token}}],
                  "contexts": [{"name": "kubeapi", "context": {"cluster": "kubeapi", "user": "admin",
                                                               "namespace": "default"}}],
                  "current-context": "kubeapi"}
    tmpkc = kc_path.with_suffix(".tmp")
    tmpkc.write_text(yaml.safe_dump(kubeconfig, sort_keys=False))
    os.chmod(tmpkc, 0o600)
    os.replace(tmpkc, kc_path)

    app.guest_images = {}
    for item in args.guest_image:
        image, sep, path = item.partition("=")
        if not sep or not image or not path:
            raise SystemExit("kubeapi: --guest-image takes IMAGE=DIR (e.g. quay.io/containerdisks/debian:12=.build/"
                             "guest-image), got %r" % item)
        app.guest_images[image] = path
    app.guest_workdir = Path(args.guest_workdir or kc_path.parent / "guests")
    names = [] if args.controllers.strip() in ("", "none") else [n.strip() for n in args.controllers.split(",")]
    start_controllers(app, names)

    def stop(signum, frame):
        app.stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("kubeapi ready on %s" % url, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        app.stopping.set()
        for c in app.controllers:
            c.stop()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
