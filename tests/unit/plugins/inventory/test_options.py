"""Option normalisation: top-level defaults, kubevirt.core connections entries, one-sentence errors."""
import pytest

from ansible.errors import AnsibleError

from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils._inventory_options import build_connections


def test_defaults_match_kubevirt_core():
    (conn,) = build_connections({})
    assert conn.index is None and conn.auth == {}
    assert conn.api_version == "kubevirt.io/v1"
    assert conn.populate.host_format == "{namespace}-{name}"
    assert conn.populate.states == ("running",)
    assert conn.populate.unset_ansible_port is True and conn.populate.create_groups is False
    assert conn.address.strategies == ("load_balancer", "node_port", "first_interface")
    assert conn.address.ssh_port == 22 and conn.address.winrm_ports == (5986, 5985)
    assert conn.needs_base_domain_lookup is False


def test_network_name_and_secondary_dns_select_strategies():
    (conn,) = build_connections({"network_name": "br1", "kube_secondary_dns": True})
    assert conn.address.strategies == ("secondary_dns", "network")
    assert conn.needs_base_domain_lookup is True
    (conn,) = build_connections({"network_name": "br1", "kube_secondary_dns": True, "base_domain": "example.com"})
    assert conn.needs_base_domain_lookup is False


def test_explicit_strategies_win_over_switches():
    (conn,) = build_connections({"address_strategies": ["node_port", "first_interface"], "use_service": False})
    assert conn.address.strategies == ("node_port", "first_interface")


def test_connections_inherit_top_level_and_override():
    conns = build_connections(
        {"api_key": "top-token", "label_selector": "app=web", "create_groups": True},
        [{"name": "east", "kubeconfig": "/k/east", "interface_name": "br0"},
         {"name": "west", "api_key": "west-token", "verify_ssl": "no", "create_groups": "false", "namespaces": "a, b"}])
    east, west = conns
    assert east.name == "east" and east.auth == {"api_key": "top-token", "kubeconfig": "/k/east"}
    assert east.address.network_name == "br0" and east.address.strategies == ("network",)
    assert east.label_selector == "app=web" and east.populate.create_groups is True
    assert west.auth == {"api_key": "west-token", "validate_certs": False}
    assert west.populate.create_groups is False and west.namespaces == ["a", "b"]


def test_default_win_ansible_connection_top_level_and_per_connection():
    (conn,) = build_connections({})
    assert conn.populate.win_connection == "winrm"
    top, other = build_connections({"default_win_ansible_connection": "psrp"},
                                   [{"name": "a"}, {"name": "b", "default_win_ansible_connection": "ansible.builtin.ssh"}])
    assert top.populate.win_connection == "psrp" and other.populate.win_connection == "ansible.builtin.ssh"


def test_fingerprint_never_contains_credentials():
    (conn,) = build_connections({"api_key": "s3cr3t", "password": "pw", "host": "https://h"})
    assert "s3cr3t" not in repr(conn.fetch_fingerprint()) and "pw" not in repr(conn.fetch_fingerprint())
    assert "https://h" in conn.fetch_fingerprint()


@pytest.mark.parametrize("options, connections, message", [
    ({"api_version": "v1"}, None, "api_version must look like kubevirt.io/v1"),
    ({"host_format": "{name"}, None, "host_format"),
    ({"host_format": "{nmae}"}, None, "may only use the specifiers"),
    ({"prefer_ip_family": "v4"}, None, "prefer_ip_family must be one of any, ipv4, ipv6"),
    ({"default_win_ansible_connection": "local"}, None, "default_win_ansible_connection must be one of winrm, ansible.builtin.winrm"),
    ({}, [{"default_win_ansible_connection": "rdp"}], "connections[0].default_win_ansible_connection must be one of"),
    ({"address_strategies": ["dns"]}, None, "address_strategies must list some of"),
    ({"address_strategies": ["network"]}, None, "needs network_name"),
    ({"node_address_types": ["PublicIP"]}, None, "node_address_types must list some of"),
    ({"states": []}, None, "states must list at least one state"),
    ({"ssh_port": 70000}, None, "must be TCP ports"),
    ({"page_size": 0}, None, "page_size must be a positive number"),
    ({}, "oops", "connections must be a list"),
    ({}, ["oops"], "connections[0] must be a dictionary"),
    ({}, [{"nmespaces": ["a"]}], "connections[0] has the unknown option 'nmespaces'"),
    ({}, [{}, {"use_service": "maybe"}], "connections[1].use_service must be a boolean"),
    ({}, [{"ssh_port": "ssh"}], "connections[0].ssh_port must be an integer"),
    ({}, [{"namespaces": [1]}], "connections[0].namespaces must be a list of strings"),
    ({}, [{"address_strategies": ["secondary_dns"]}], "connections[0].address_strategies uses secondary_dns, which needs"),
])
def test_invalid_values_name_the_option(options, connections, message):
    with pytest.raises(AnsibleError) as err:
        build_connections(options, connections)
    assert message in str(err.value)


def test_aliases_match_the_documented_ones():
    """ALIASES (used for connections entries and the unknown-option check) is the documented aliases, no more or less."""
    import json
    import os
    import subprocess
    import sys

    from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils._inventory_options import (
        ALIASES, AUTH_OPTIONS, CLUSTER_OPTIONS,
    )

    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-doc"), "-t", "inventory", "--json",
                          "virtfleet.kubevirt.kubevirt"], capture_output=True, text=True, check=True)
    options = json.loads(out.stdout)["virtfleet.kubevirt.kubevirt"]["doc"]["options"]
    documented = dict((alias, name) for name, spec in options.items() for alias in spec.get("aliases") or [])
    assert documented == ALIASES
    # every per-cluster and connection option is documented at the top level
    assert set(CLUSTER_OPTIONS) | set(AUTH_OPTIONS) <= set(options)
