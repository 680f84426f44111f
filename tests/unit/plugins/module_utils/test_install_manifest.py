"""Unit tests for _install_manifest: sources, parsing, image rewriting for mirrors, version detection, kinds
(discovery on the real Client and Api over a fake urllib3 pool)."""
from pathlib import Path

import pytest

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _install_manifest as m
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._api import Api
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ApiError, KubeVirtError
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._kinds import Kind

from ..kube_fakes import FakePool, make_client
from ..pool_routes import calls, forbidden

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "install"
KV190 = FIXTURES / "kubevirt-v1.9.0" / "kubevirt-operator.yaml"
CDI166 = FIXTURES / "cdi-v1.66.0" / "cdi-operator.yaml"


def load(path):
    return m.parse(path.read_text(), str(path))


@pytest.mark.parametrize("value, expected", [("1.9.0", "v1.9.0"), ("v1.9.0", "v1.9.0"), (" v1.10.2-rc.1", "v1.10.2-rc.1"),
                                             (None, None)])
def test_normalize_version(value, expected):
    assert m.normalize_version(value, "version") == expected


@pytest.mark.parametrize("value", ["latest", "1.9", "v1.9.x", "stable"])
def test_normalize_version_rejects_with_the_option_name(value):
    with pytest.raises(KubeVirtError, match=r"^cdi.version must be a release version such as v1.9.0"):
        m.normalize_version(value, "cdi.version")


def test_version_resolves_to_the_release_asset_urls():
    assert m.release_url(m.KUBEVIRT, "v1.9.0") == \
        "https://github.com/kubevirt/kubevirt/releases/download/v1.9.0/kubevirt-operator.yaml"
    assert m.release_url(m.CDI, "v1.66.0") == \
        "https://github.com/kubevirt/containerized-data-importer/releases/download/v1.66.0/cdi-operator.yaml"


def test_read_source_order_and_fetch():
    fetched = []

    def fetch(url, validate_certs=True):
        fetched.append((url, validate_certs))
        return "text"
    assert m.read_source(m.KUBEVIRT, version="v1.9.0", fetch=fetch, validate_certs=False) == (
        "text", "https://github.com/kubevirt/kubevirt/releases/download/v1.9.0/kubevirt-operator.yaml")
    assert m.read_source(m.KUBEVIRT, version="v1.9.0", url="https://mirror/k.yaml", fetch=fetch)[1] == "https://mirror/k.yaml"
    text, where = m.read_source(m.KUBEVIRT, version="v1.9.0", path=str(KV190), fetch=fetch)
    assert where == str(KV190) and "virt-operator" in text
    release = "https://github.com/kubevirt/kubevirt/releases/download/v1.9.0/kubevirt-operator.yaml"
    assert fetched == [(release, False), ("https://mirror/k.yaml", True)]


def test_read_source_errors_name_the_options(tmp_path):
    with pytest.raises(KubeVirtError, match="set cdi.version, cdi.manifest_url or cdi.manifest_path"):
        m.read_source(m.CDI, prefix="cdi.")
    with pytest.raises(KubeVirtError, match="manifest_path .*missing.yaml does not exist"):
        m.read_source(m.KUBEVIRT, path=str(tmp_path / "missing.yaml"))


def test_parse_fixture_in_order():
    objs = load(KV190)
    assert [o["kind"] for o in objs] == ["Namespace", "CustomResourceDefinition", "PriorityClass", "ClusterRole",
                                         "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding",
                                         "Deployment"]


@pytest.mark.parametrize("text, match", [("a: [", "is not valid YAML"), ("---\n---\n", "holds no Kubernetes objects"),
                                         ("kind: X\n", "not a Kubernetes object")])
def test_parse_errors(text, match):
    with pytest.raises(KubeVirtError, match=match):
        m.parse(text, "f.yaml")


def test_parse_expands_lists():
    text = "kind: List\napiVersion: v1\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: a}}\n"
    assert m.parse(text, "f")[0]["metadata"]["name"] == "a"


@pytest.mark.parametrize("image, registry, expected", [
    ("quay.io/kubevirt/virt-operator:v1.9.0", "mirror:5000/kv", "mirror:5000/kv/virt-operator:v1.9.0"),
    ("quay.io/kubevirt/virt-operator@sha256:abc", "mirror/kv/", "mirror/kv/virt-operator@sha256:abc"),
    ("localhost:5000/virt-operator:v1", "m", "m/virt-operator:v1"),
    ("virt-operator", "m", "m/virt-operator"),
])
def test_rewrite_image(image, registry, expected):
    assert m.rewrite_image(image, registry) == expected


def test_versions_of_the_fixtures():
    assert m.manifest_version(m.KUBEVIRT, load(KV190)) == "v1.9.0"
    assert m.manifest_version(m.CDI, load(CDI166)) == "v1.66.0"


def test_version_falls_back_to_the_image_tag_and_digest_needs_the_env():
    objs = load(KV190)
    container = m.operator_deployment(m.KUBEVIRT, objs)["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [e for e in container["env"] if e["name"] != "KUBEVIRT_VERSION"]
    assert m.manifest_version(m.KUBEVIRT, objs) == "v1.9.0"
    container["image"] = "quay.io/kubevirt/virt-operator@sha256:abc"
    with pytest.raises(KubeVirtError, match="no tag and no KUBEVIRT_VERSION"):
        m.manifest_version(m.KUBEVIRT, objs)


def test_customize_moves_operator_and_operand_images_and_adds_pull_secrets():
    objs = load(CDI166)
    out = m.customize(m.CDI, objs, "mirror.example/kv", ["pull"])
    dep = m.operator_deployment(m.CDI, out)
    pod = dep["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "mirror.example/kv/cdi-operator:v1.66.0"
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["IMPORTER_IMAGE"] == "mirror.example/kv/cdi-importer:v1.66.0"
    assert env["PULL_POLICY"] == "IfNotPresent" and env["OPERATOR_VERSION"] == "v1.66.0"
    assert pod["imagePullSecrets"] == [{"name": "pull"}]
    # The input is not modified.
    assert m.operator_deployment(m.CDI, objs)["spec"]["template"]["spec"]["containers"][0]["image"].startswith("quay.io")


def test_manifest_without_operator_deployment():
    objs = [o for o in load(KV190) if o["kind"] != "Deployment"]
    with pytest.raises(KubeVirtError, match="has no Deployment named virt-operator"):
        m.operator_deployment(m.KUBEVIRT, objs)


DISCOVERY = "/apis/networking.k8s.io/v1"


def resolver_on(pool):
    return m.KindResolver(Api(make_client(pool)))


def test_kind_resolver_known_kinds_cost_nothing_and_unknown_cost_one_discovery():
    pool = FakePool().on("GET", DISCOVERY, {
        "kind": "APIResourceList", "groupVersion": "networking.k8s.io/v1",
        "resources": [{"name": "networkpolicies", "kind": "NetworkPolicy", "namespaced": True},
                      {"name": "networkpolicies/status", "kind": "NetworkPolicy", "namespaced": True}]})
    resolve = resolver_on(pool)
    assert resolve("rbac.authorization.k8s.io/v1", "ClusterRole").plural == "clusterroles"
    assert pool.requests == []
    kind = resolve("networking.k8s.io/v1", "NetworkPolicy")
    assert (kind.plural, kind.namespaced) == ("networkpolicies", True)
    assert kind.path("ns") == "/apis/networking.k8s.io/v1/namespaces/ns/networkpolicies"
    resolve("networking.k8s.io/v1", "NetworkPolicy")
    assert calls(pool) == [("GET", DISCOVERY)]


def test_kind_resolver_core_group_discovery_path():
    pool = FakePool().on("GET", "/api/v1", {"kind": "APIResourceList", "groupVersion": "v1",
                                            "resources": [{"name": "limitranges", "kind": "LimitRange", "namespaced": True}]})
    assert resolver_on(pool)("v1", "LimitRange").plural == "limitranges"
    assert calls(pool) == [("GET", "/api/v1")]


def test_kind_resolver_unknown_group():
    pool = FakePool()   # every path answers 404 page-not-found: the group is not served
    with pytest.raises(KubeVirtError, match="does not serve example.com/v1 Widget"):
        resolver_on(pool)("example.com/v1", "Widget")
    assert calls(pool) == [("GET", "/apis/example.com/v1")]


def test_kind_resolver_other_discovery_errors_propagate():
    pool = FakePool().on("GET", "/apis/example.com/v1", forbidden(Kind("example.com", "v1", "widgets", "Widget"), verb="get"))
    with pytest.raises(ApiError) as err:
        resolver_on(pool)("example.com/v1", "Widget")
    assert err.value.status == 403
