"""The plugin class: file names, applying host entries (groups, wrapping, filters, constructed) and parse on the real
Client and Api over a fake urllib3 pool, including an in-memory cache hit that makes no request."""
import pytest

from ansible.errors import AnsibleError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.cache import CachePluginAdjudicator
from ansible.plugins.inventory import BaseInventoryPlugin

from ansible_collections.virtfleet.kubevirt.plugins.inventory import kubevirt as plugin_module
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds
from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils import _inventory_fetch as fetch_module
from ansible_collections.virtfleet.kubevirt.plugins.inventory.kubevirt import HAS_DATA_TAGGING, InventoryModule
from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils._inventory_options import AUTH_OPTIONS, CLUSTER_OPTIONS
from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils._inventory_populate import HostEntry

from ..kube_fakes import FakePool, make_client
from ..pool_routes import calls, serve_lists
from .objects import service, vm, vmi

EVIL = "{{ 'EVALUATED' }}"


def trusted(value):
    """Expressions read from the source file are trusted by ansible-core 2.19 (_read_config_data); mimic that."""
    if not HAS_DATA_TAGGING:
        return value
    from ansible.template import trust_as_template
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return dict((k, trusted(v)) for k, v in value.items())
    return [trusted(v) for v in value]


def make_plugin(tmp_path, **options):
    plugin = InventoryModule()
    values = dict((k, None) for k in tuple(CLUSTER_OPTIONS) + AUTH_OPTIONS)
    values.update({"compose": {}, "groups": {}, "keyed_groups": [], "strict": False, "include_filters": [],
                   "exclude_filters": [], "use_extra_vars": False, "leading_separator": True, "connections": None,
                   "cache": False, "cache_connection": None, "cache_prefix": "ansible_inventory_",
                   "gc_freeze": False})  # freezing would be process-wide: pytest's own objects too
    values.update(options)
    plugin.get_option = values.__getitem__
    source = tmp_path / "kubevirt.yml"
    source.write_text("plugin: virtfleet.kubevirt.kubevirt\n")
    BaseInventoryPlugin.parse(plugin, InventoryData(), DataLoader(), str(source))
    plugin._read_config_data = lambda path: {}  # options come from `values` above
    return plugin


def entry(name, variables, labels=()):
    return HostEntry(name, "cluster", "namespace_ns", list(labels), variables)


@pytest.mark.parametrize("name, ok", [
    ("kubevirt.yml", True), ("prod.kubevirt.yaml", True), ("inventory.yml", False), ("kubevirt.yml.bak", False),
])
def test_verify_file_accepts_only_kubevirt_yml_names(tmp_path, name, ok):
    path = tmp_path / name
    path.write_text("plugin: virtfleet.kubevirt.kubevirt\n")
    assert InventoryModule().verify_file(str(path)) is ok
    assert InventoryModule().verify_file(str(tmp_path / "missing-kubevirt.yml")) is False


def test_add_hosts_builds_groups_and_keeps_api_strings_untemplatable(tmp_path):
    plugin = make_plugin(tmp_path)
    plugin._add_hosts([entry("ns-a", {"vmi_annotations": {"note": EVIL}, "ansible_host": "10.0.0.1"}, ["label_x"])])
    inv = plugin.inventory
    assert inv.groups["cluster"].child_groups[0].name == "namespace_ns"
    assert [h.name for h in inv.groups["namespace_ns"].hosts] == ["ns-a"]
    assert [h.name for h in inv.groups["label_x"].hosts] == ["ns-a"]
    value = inv.get_host("ns-a").vars["vmi_annotations"]["note"]
    assert value == EVIL
    if not HAS_DATA_TAGGING:
        from ansible.utils.unsafe_proxy import AnsibleUnsafeText
        assert isinstance(value, AnsibleUnsafeText)
    else:
        from ansible.template import is_trusted_as_template
        assert not is_trusted_as_template(value)


@pytest.mark.parametrize("include, exclude, expected", [
    ([], [], ["a", "b"]),
    (["app == 'web'"], [], ["a"]),
    (["app == 'web'", "app == 'db'"], [], ["a", "b"]),
    ([], ["inventory_hostname == 'a'"], ["b"]),
    (["no_such_var == 1"], [], []),  # not strict: an error counts as no match
    ([], ["no_such_var == 1"], ["a", "b"]),
])
def test_include_and_exclude_filters(tmp_path, include, exclude, expected):
    plugin = make_plugin(tmp_path, include_filters=trusted(include), exclude_filters=trusted(exclude))
    plugin._add_hosts([entry("a", {"app": "web"}), entry("b", {"app": "db"})])
    assert sorted(plugin.inventory.hosts) == expected


def test_filter_errors_are_fatal_when_strict(tmp_path):
    plugin = make_plugin(tmp_path, include_filters=trusted(["no_such_var == 1"]), strict=True)
    with pytest.raises(AnsibleError, match="include_filters entry 'no_such_var == 1' for host a"):
        plugin._add_hosts([entry("a", {"app": "web"})])


def test_constructed_features_apply(tmp_path):
    plugin = make_plugin(tmp_path, compose=trusted({"role": "app + '-server'"}), groups=trusted({"webs": "app == 'web'"}),
                         keyed_groups=[{"key": trusted("app"), "prefix": "app"}])
    plugin._add_hosts([entry("a", {"app": "web"}), entry("b", {"app": "db"})])
    inv = plugin.inventory
    assert inv.get_host("a").vars["role"] == "web-server"
    assert [h.name for h in inv.groups["webs"].hosts] == ["a"]
    assert [h.name for h in inv.groups["app_db"].hosts] == ["b"]


HOST = "https://api.example.com:6443"


def prod_cluster():
    """A server with one VM in namespace prod and a NodePort Service for its SSH port."""
    pool = FakePool()
    serve_lists(pool, _kinds.VMI, [vmi("web", "prod", labels={"kubevirt.io/domain": "web"})])
    serve_lists(pool, _kinds.VM, [vm("web", "prod")])
    serve_lists(pool, _kinds.SERVICE, [service("web-ssh", "prod", selector={"kubevirt.io/domain": "web"})])
    return pool


def connect_to(monkeypatch, pool):
    """The plugin's client is the real Client, over ``pool`` instead of the network."""
    monkeypatch.setattr(plugin_module, "client_from_plugin_options", lambda get_option: make_client(pool, host=HOST))


def test_parse_over_the_fake_pool_and_memory_cache(tmp_path, monkeypatch):
    pool = prod_cluster()
    connect_to(monkeypatch, pool)
    plugin = make_plugin(tmp_path, cache=True, create_groups=True)
    plugin._cache = CachePluginAdjudicator(plugin_name="memory")
    source = str(tmp_path / "kubevirt.yml")
    plugin.parse(plugin.inventory, plugin.loader, source, cache=True)
    host = plugin.inventory.get_host("prod-web")
    assert (host.vars["ansible_host"], host.vars["ansible_port"]) == ("node01", 30022)
    groups = sorted(g.name for g in host.get_groups())
    assert groups == ["api_example_com_6443", "label_kubevirt_io_domain_web", "namespace_prod"]
    assert sorted(calls(pool, "limit")) == [("GET", path, None) for path in  # no page_size: one unpaginated list
                                            sorted(k.path() for k in (_kinds.SERVICE, _kinds.VMI, _kinds.VM))]
    second = make_plugin(tmp_path, cache=True)
    second._cache = plugin._cache
    second.parse(second.inventory, second.loader, source, cache=True)
    assert len(pool.requests) == 3  # served from the cache
    assert second.inventory.get_host("prod-web").vars["ansible_host"] == "node01"
    third = make_plugin(tmp_path, cache=True, namespaces=["prod"])
    third._cache = plugin._cache
    third.parse(third.inventory, third.loader, source, cache=True)
    # another selection: the cached entry does not match, the namespace is listed
    assert sorted(r.path for r in pool.requests[3:]) == sorted(k.path("prod") for k in (_kinds.SERVICE, _kinds.VMI, _kinds.VM))


class RecordingGc(object):
    """Stands in for the gc module of _inventory_fetch: records the calls, freezes nothing in the test process."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        def call(*args):
            self.calls.append(name)
            return {"get_freeze_count": 375, "isenabled": True}.get(name)  # Python 3.12 counts immortal objects
        return call


@pytest.mark.parametrize("options, frozen_before, expected", [
    ({}, False, ["unfreeze", "freeze"]),  # nothing to collect: no 0.1 s full collection
    ({}, True, ["unfreeze", "collect", "freeze"]),  # a refresh: the old inventory is garbage
    ({"compose": {"x": "1"}}, False, ["unfreeze", "collect", "freeze"]),  # templating left cycles
    ({"exclude_filters": ["false"]}, False, ["unfreeze", "collect", "freeze"]),
    ({"gc_freeze": False}, True, []),
])
def test_gc_freeze_collects_only_when_garbage_can_exist(tmp_path, monkeypatch, options, frozen_before, expected):
    fake_gc = RecordingGc()
    monkeypatch.setattr(fetch_module, "gc", fake_gc)
    monkeypatch.setattr(fetch_module, "_FROZEN", [frozen_before])
    connect_to(monkeypatch, prod_cluster())
    options = dict(options)
    options.setdefault("gc_freeze", True)
    if "compose" in options:
        options["compose"] = trusted(options["compose"])
    if "exclude_filters" in options:
        options["exclude_filters"] = trusted(options["exclude_filters"])
    plugin = make_plugin(tmp_path, **options)
    plugin.parse(plugin.inventory, plugin.loader, str(tmp_path / "kubevirt.yml"), cache=False)
    assert plugin.inventory.get_host("prod-web") is not None
    assert fetch_module._FROZEN == [options["gc_freeze"] or frozen_before]  # pylint: disable=protected-access
    assert [c for c in fake_gc.calls if c not in ("isenabled", "disable", "enable")] == expected


def test_gc_freeze_collects_on_a_refresh_whatever_the_freeze_count_says(tmp_path, monkeypatch):
    """The first parse of a process skips the full collection, the next one (meta: refresh_inventory) does it, even
    when gc.get_freeze_count() is not 0 before any freeze (Python 3.12 counts its immortal objects there)."""
    fake_gc = RecordingGc()
    monkeypatch.setattr(fetch_module, "gc", fake_gc)
    monkeypatch.setattr(fetch_module, "_FROZEN", [False])
    connect_to(monkeypatch, prod_cluster())
    plugin = make_plugin(tmp_path, gc_freeze=True)
    for _ in range(2):
        plugin.parse(plugin.inventory, plugin.loader, str(tmp_path / "kubevirt.yml"), cache=False)
    assert [c for c in fake_gc.calls if c not in ("isenabled", "disable", "enable")] == [
        "unfreeze", "freeze", "unfreeze", "collect", "freeze"]
