"""Test helper run by maintenance_record.yml (a user task file of node_maintenance): append one JSON line to a record
file with what the cluster says about the node being maintained at that moment.

    python record_node_state.py RECORD NODE [NOTE]

The line: {"node", "note", "time", "unschedulable" (the Node's spec.unschedulable), "vmis" (the VMIs whose
status.nodeName is NODE, every namespace: "namespace/name")}. The connection is the kubeconfig of K8S_AUTH_KUBECONFIG
or KUBECONFIG (token or client certificate, the cluster's CA file or data); only the standard library and PyYAML
are needed.
"""
import base64
import json
import os
import ssl
import sys
import time
import urllib.parse
import urllib.request

import yaml


def connection():
    path = os.environ.get("K8S_AUTH_KUBECONFIG") or os.environ["KUBECONFIG"]
    with open(path) as handle:
        config = yaml.safe_load(handle)
    context = next(c["context"] for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
    ca_data = cluster.get("certificate-authority-data")
    tls = ssl.create_default_context(cafile=cluster.get("certificate-authority"),
                                     cadata=base64.b64decode(ca_data).decode() if ca_data else None)
    if user.get("client-certificate"):
        tls.load_cert_chain(user["client-certificate"], user["client-key"])
    headers = {"Authorization": "Bearer " + user["token"]} if user.get("token") else {}
    return cluster["server"].rstrip("/"), tls, headers


def get(server, tls, headers, path):
    request = urllib.request.Request(server + path, headers=headers)
    with urllib.request.urlopen(request, context=tls, timeout=30) as response:
        return json.loads(response.read())


def main(argv):
    record, node = argv[1], argv[2]
    note = argv[3] if len(argv) > 3 else ""
    server, tls, headers = connection()
    node_obj = get(server, tls, headers, "/api/v1/nodes/" + urllib.parse.quote(node))
    vmis = get(server, tls, headers, "/apis/kubevirt.io/v1/virtualmachineinstances")["items"]
    line = {"node": node, "note": note, "time": time.time(),
            "unschedulable": bool((node_obj.get("spec") or {}).get("unschedulable")),
            "vmis": sorted("%s/%s" % (v["metadata"]["namespace"], v["metadata"]["name"]) for v in vmis
                           if (v.get("status") or {}).get("nodeName") == node)}
    with open(record, "a") as handle:
        handle.write(json.dumps(line) + "\n")
    print(json.dumps(line))


if __name__ == "__main__":
    main(sys.argv)
