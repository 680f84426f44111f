"""The neutral reader of the differential tests: stores one VirtualMachine as the API serves it.

Both playbooks (kubevirt.core's and ours) run it after every step through a ``pipe`` lookup, with the same
Python and the standard library only, so neither collection's client is involved in what gets compared:

    python reader.py CONFIG OUT_FILE NAMESPACE NAME

CONFIG is a JSON file {"url", "token", "ca_file"}; OUT_FILE gets {"status": <HTTP status>, "object": <body or null>}.
"""
import json
import ssl
import sys
import urllib.error
import urllib.request


def read(config, namespace, name):
    path = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachines/%s" % (namespace, name)
    req = urllib.request.Request(config["url"] + path, headers={"Authorization": "Bearer " + config["token"]})
    context = ssl.create_default_context(cafile=config["ca_file"]) if config.get("ca_file") else None
    try:
        with urllib.request.urlopen(req, context=context, timeout=30) as resp:
            return {"status": resp.status, "object": json.loads(resp.read())}
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "object": None}


def main(argv):
    config_file, out_file, namespace, name = argv
    with open(config_file) as fh:
        config = json.load(fh)
    doc = read(config, namespace, name)
    with open(out_file, "w") as fh:
        json.dump(doc, fh)
    sys.stdout.write("%s\n" % doc["status"])


if __name__ == "__main__":
    main(sys.argv[1:])
