# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# Dual-licensed: Apache License 2.0 (see LICENSE) or, at your option,
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: kubevirt
short_description: Inventory source for KubeVirt VirtualMachines and VirtualMachineInstances
version_added: 1.0.0
author:
  - virtfleet maintainers (@virtfleet)
description:
  - Lists running KubeVirt virtual machines (a C(VirtualMachineInstance) in phase C(Running)) as hosts with a
    reachable C(ansible_host), C(ansible_port) and, for Windows guests, C(ansible_connection) (see
    O(default_win_ansible_connection)).
  - A drop-in replacement for the C(kubevirt.core.kubevirt) inventory plugin 2.x with one deliberate
    difference, which is that only running VMs are hosts by default (kubevirt.core also lists stopped ones);
    O(states=[all]) gives kubevirt.core's host list back. An inventory file written for it works after changing its C(plugin) value. Host
    names, groups (cluster, C(namespace_<namespace>), C(label_<key>_<value>)) and the C(vm_*)/C(vmi_*) host variables
    are the same.
  - One refresh costs a constant number of paginated list requests (VMIs, VMs, and Services/Nodes when an address
    strategy needs them), listed cluster-wide; per-namespace lists are used only for the O(namespaces) given or when the
    credentials may not list cluster-wide.
  - Values read from the API are never templated; labels and annotations stay dictionary values of C(vm_labels),
    C(vmi_labels), C(vm_annotations) and C(vmi_annotations).
  - "Host variables: C(vm_<status key>) and C(vmi_<status key>) (snake_cased C(status) fields of the VM and VMI, for
    example C(vm_printable_status), C(vmi_phase), C(vmi_interfaces), C(vmi_guest_os_info)), C(vm_labels),
    C(vm_annotations), C(vm_uid), C(vm_resource_version) and the same for C(vmi_), plus C(vm_state) (see O(states))
    and C(vm_address_source) (the strategy that chose C(ansible_host), see O(address_strategies)); hosts of the
    C(api_tunnel) strategy also get C(ansible_ssh_common_args)."
  - The configuration file name must end with C(kubevirt.yml) or C(kubevirt.yaml). AWX/AAP inventory sources named
    C(kubevirt.yml) work with credentials passed as C(K8S_AUTH_*) environment variables, see C(docs/awx-inventory.md).
extends_documentation_fragment:
  - virtfleet.kubevirt._auth.plugin
  - inventory_cache
  - constructed
options:
  plugin:
    description: Marks this file as a source for this plugin.
    type: str
    required: true
    choices: [kubevirt, virtfleet.kubevirt.kubevirt]
  name:
    description:
      - Name of the cluster, used as the group that holds its C(namespace_*) groups.
      - Defaults to the API server URL without scheme, with C(.) replaced by C(-) and C(:) by C(_).
    type: str
  host_format:
    description:
      - Format of inventory host names. Specifiers C({name}), C({namespace}), C({uid}) (the VM's, else the VMI's)
        and C({cluster}) (the cluster name).
    type: str
    default: "{namespace}-{name}"
  namespaces:
    description:
      - Namespaces to list VMs from, with one list request per namespace and kind.
      - When not set, VMs of all namespaces are listed with cluster-wide requests; if the credentials may not list
        cluster-wide, the namespaces are listed and each is read separately.
    type: list
    elements: str
  label_selector:
    description: Kubernetes label selector applied to the VirtualMachine and VirtualMachineInstance lists.
    type: str
  field_selector:
    description:
      - Kubernetes field selector applied to the VirtualMachine and VirtualMachineInstance lists, for example
        C(metadata.namespace!=scratch). KubeVirt resources support only C(metadata.name) and C(metadata.namespace).
    type: str
  include_filters:
    description:
      - Jinja2 conditionals evaluated against each host's variables (after O(compose)); when set, a host is kept
        only if at least one of them is true.
    type: list
    elements: str
    default: []
  exclude_filters:
    description: Jinja2 conditionals evaluated against each host's variables; a host is dropped if any of them is true.
    type: list
    elements: str
    default: []
  states:
    description:
      - VM states to include, compared case-insensitively with the host variable C(vm_state).
      - C(vm_state) is C(Running) for a VMI in phase C(Running), C(Paused) for a paused one, otherwise the VM's
        C(printableStatus) (C(Stopped), C(Starting), C(ErrorUnschedulable), ...) or the VMI's phase for VMIs without VM.
      - Use C(all) to include every VM and VMI. Hosts that are not running get no C(ansible_host).
    type: list
    elements: str
    default: [Running]
  network_name:
    description:
      - In case several networks are attached to a VM, the network (or in-guest interface) whose IP address is used
        as C(ansible_host) (strategy C(network)).
    type: str
    aliases: [interface_name]
  kube_secondary_dns:
    description:
      - Use the C(kubesecondarydns) host name C(<network_name>.<vm>.<namespace>.vm[.<base_domain>]) (strategy
        C(secondary_dns)). Needs O(network_name).
    type: bool
    default: false
  use_service:
    description:
      - Use LoadBalancer and NodePort Services that expose SSH (or WinRM) to reach a VM, before its interface IP.
      - Services are only used if no O(network_name) was given and O(address_strategies) is not set.
    type: bool
    default: true
  unset_ansible_port:
    description: Set C(ansible_port) to null when no Service maps the port, so inherited values do not apply.
    type: bool
    default: true
  create_groups:
    description: Create a group C(label_<key>_<value>) for each label of the VMs and VMIs and add the host to it.
    type: bool
    default: false
  base_domain:
    description:
      - Base domain appended to C(kubesecondarydns) names, and to node names of NodePort Services when
        O(append_base_domain=true). Defaults to the OpenShift cluster DNS base domain when there is one.
    type: str
  append_base_domain:
    description: Append the base domain to node names used for NodePort Services.
    type: bool
    default: false
  default_win_ansible_connection:
    description:
      - Value of C(ansible_connection) for Windows guests, as in kubevirt.core 2.3.0. A guest is Windows when the
        guest agent reports the OS id C(mswindows), or, without that report, when the VMI's (else the VM's)
        annotation C(kubevirt.io/cluster-preference-name), C(kubevirt.io/preference-name) or C(vm.kubevirt.io/os)
        starts with C(windows).
      - With V(winrm) or V(psrp) (with or without C(ansible.builtin.)), Services must map one of O(winrm_ports);
        with V(ssh) or V(ansible.builtin.ssh), they must map O(ssh_port), as for other guests.
      - Hosts that are not Windows, and hosts without C(ansible_host), get no C(ansible_connection).
    type: str
    choices: [winrm, ansible.builtin.winrm, psrp, ansible.builtin.psrp, ssh, ansible.builtin.ssh]
    default: winrm
  api_version:
    description: KubeVirt API version of VirtualMachines and VirtualMachineInstances.
    type: str
    default: kubevirt.io/v1
  address_strategies:
    description:
      - Ordered list of ways to find C(ansible_host); the first one that yields an address wins. C(secondary_dns)
        (needs O(network_name)), C(load_balancer) (ingress of a LoadBalancer Service mapping the SSH/WinRM port,
        C(ansible_port) is the Service port), C(node_port) (a node address and the Service's node port),
        C(network) (IP of the interface named O(network_name)), C(first_interface) (first interface with an IP),
        C(guest_agent_hostname) (host name reported by the guest agent, one extra request per VM that reaches
        this strategy), C(api_tunnel) (SSH through the Kubernetes API server, see below).
      - C(api_tunnel) reaches any running VMI, even one with no Service and no reachable IP, through KubeVirt's
        C(portforward) subresource (what C(virtctl port-forward) and C(virtctl ssh) use), with this source's own
        credentials. Alone or as the last entry (for example C([load_balancer, node_port, api_tunnel])), it gives
        a host C(ansible_host=<vmi>.<namespace>.api-tunnel) (C(<vmi>.<namespace>.<cluster name>.api-tunnel) for the
        entries of O(connections)), a name ssh never resolves, C(ansible_port) the guest's SSH port (O(ssh_port) or
        the VM's annotation C(virtfleet.kubevirt/ssh-port)) and C(ansible_ssh_common_args) with
        C(-o ProxyCommand=<python> <collection>/plugins/plugin_utils/_api_tunnel.py --namespace ... --name ... --port %p ...),
        a bridge that ansible-core's C(ssh) connection runs (keys, C(ansible_user), become, pipelining and
        ControlPersist work as usual; setting C(ansible_ssh_common_args) elsewhere for such a host replaces it).
      - The credentials of C(api_tunnel) need the RBAC verb C(get) on C(virtualmachineinstances/portforward) in the
        API group C(subresources.kubevirt.io) (KubeVirt's C(kubevirt.io:edit) and C(kubevirt.io:admin) cluster roles
        grant it). Credentials given inline in the source (O(api_key), O(password), O(kubeconfig) as a dictionary,
        proxy credentials) are written to a file of mode 0600 under C(~/.ansible/virtfleet.kubevirt/api-tunnel/) whose
        path is the only trace in the command line and host variables. A kubeconfig file is passed by its path; the
        environment's credentials (C(K8S_AUTH_*), C(KUBECONFIG), the pod's service account) are read again by the
        bridge from the environment ssh runs it in, so a playbook run (an AWX job template) needs them as the
        inventory sync had them.
      - C(api_tunnel) is never chosen for Windows hosts reached over WinRM or PSRP (see
        O(default_win_ansible_connection)), and never by default, so kubevirt.core's defaults are unchanged.
      - When not set, derived from O(network_name), O(kube_secondary_dns) and O(use_service) as kubevirt.core does,
        for example C([load_balancer, node_port, first_interface]) by default.
      - The chosen strategy is in the host variable C(vm_address_source).
    type: list
    elements: str
    choices: [secondary_dns, load_balancer, node_port, network, first_interface, guest_agent_hostname, api_tunnel]
  prefer_ip_family:
    description: IP family preferred when an interface, load balancer or node has several addresses.
    type: str
    choices: [any, ipv4, ipv6]
    default: any
  ssh_port:
    description:
      - Port inside the guest that Services must target to be used for SSH, and the port O(address_strategies=api_tunnel)
        connects to.
      - A VM's annotation C(virtfleet.kubevirt/ssh-port) (on the VMI, else on the VM) overrides it for that VM; a
        value that is not a port number is ignored with a warning.
    type: int
    default: 22
  winrm_ports:
    description: Ports inside Windows guests that Services must target, in order of preference (HTTPS first).
    type: list
    elements: int
    default: [5986, 5985]
  node_address_types:
    description:
      - Node addresses tried, in order, for the C(node_port) strategy. C(NodeName) is the VMI's node name (plus the
        base domain with O(append_base_domain)); the others are C(status.addresses) types and cost one list of Nodes.
    type: list
    elements: str
    choices: [NodeName, ExternalIP, InternalIP, ExternalDNS, InternalDNS, Hostname]
    default: [NodeName]
  fail_on_forbidden:
    description:
      - By default, namespaces the credentials may not read are skipped with one warning each. Set to C(true) to
        fail instead.
      - A namespace where only C(services) may not be listed is not skipped. Its VMs are listed without Service
        addresses, with one warning, whatever this option says.
    type: bool
    default: false
  page_size:
    description:
      - Objects per list request (C(limit)). When not set (the default), each kind is read with one request without
        C(limit).
      - An unpaginated list is served from kube-apiserver's watch cache (a consistent read since Kubernetes 1.31),
        while a list with C(limit) is read from etcd page by page (until Kubernetes 1.33); with 10,000 VMIs the
        unpaginated list took less than half the time on a Kubernetes 1.32 server (see C(bench/README.md)). Responses
        are decoded object by object as they arrive, so their size does not raise the plugin's memory.
      - Set it if the API server or a proxy in front of it limits response sizes or times, to read that many
        objects per request instead.
    type: int
  gc_freeze:
    description:
      - After building the hosts, move every object of the process into Python's permanent generation
        (C(gc.freeze())), so that the cyclic garbage collector stops walking the whole inventory again and again
        while ansible-core prints it or runs plays on it. At 10,000 VMs this saves about 0.5 s of CPU in
        C(ansible-inventory --list) (see C(bench/README.md)).
      - Garbage is collected first when there can be some, that is after a refresh and when O(compose), O(groups),
        O(keyed_groups), O(include_filters) or O(exclude_filters) are used, so no garbage is frozen.
      - The next refresh of this plugin in the same process (for example the C(refresh_inventory) meta task)
        unfreezes them first, so a replaced inventory is still freed.
      - Set to C(false) if something else in the process relies on C(gc.freeze()) itself.
    type: bool
    default: true
  connections:
    description:
      - Several clusters in one source, as kubevirt.core's C(connections) list. Each entry takes the connection
        options (O(kubeconfig), O(context), O(host), O(api_key), ...) and any of the per-cluster options above
        (O(name), O(namespaces), O(label_selector), O(network_name), ...), which override the top-level values.
      - Each cluster gets its own group, named by its O(name).
    type: list
    elements: dict
requirements:
  - python >= 3.9
  - kubernetes >= 28.1.0
  - urllib3 >= 1.26.0
  - PyYAML >= 6.0
  - websocket-client >= 1.5.2 (for the inventory's address strategy api_tunnel)
notes:
  - The cache (O(cache=true)) keeps only the VM/VMI metadata and status, Service ports and node addresses needed to
    rebuild the inventory, never credentials or VM specs; file caches are written with mode 0600.
"""

EXAMPLES = r"""
# kubevirt.yml -- all running VMs of all namespaces the current kubeconfig context may read
plugin: virtfleet.kubevirt.kubevirt

# kubevirt.yml -- a kubevirt.core file works after changing only the plugin value
# plugin: virtfleet.kubevirt.kubevirt
# namespaces: [testing]
# network_name: bridge-network
# label_selector: app=test

# kubevirt.yml -- choose the address: NodePort Service on the node's external IP, else first interface (IPv6 first)
# plugin: virtfleet.kubevirt.kubevirt
# address_strategies: [node_port, first_interface]
# node_address_types: [ExternalIP, InternalIP]
# prefer_ip_family: ipv6
# states: [Running, Paused]
# exclude_filters:
#   - "vmi_labels['ansible/skip'] | default('') == 'true'"
# keyed_groups:
#   - key: vmi_node_name
#     prefix: node

# kubevirt.yml -- Services where they exist, else SSH through the API server (no network exposure needed)
# plugin: virtfleet.kubevirt.kubevirt
# address_strategies: [load_balancer, node_port, api_tunnel]

# kubevirt.yml -- two clusters in one source, one group per cluster
# plugin: virtfleet.kubevirt.kubevirt
# connections:
#   - name: east
#     kubeconfig: /etc/kube/east.yml
#   - name: west
#     kubeconfig: /etc/kube/west.yml
#     context: inventory-reader
#     namespaces: [prod]
#     network_name: storage
"""

from ansible.errors import AnsibleError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.virtfleet.kubevirt.plugins.module_utils._api import Api
from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils._client import client_from_plugin_options, translate_errors
from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils import _inventory_cache as cache_util
from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils._inventory_fetch import (
    ClusterFetcher, gc_freeze, gc_paused, gc_thaw, guest_hostname_getter,
)
from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils._inventory_options import (
    ALIASES, AUTH_OPTIONS, CLUSTER_OPTIONS, build_connections, check_unknown_options,
)
from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils._inventory_populate import build_hosts, default_cluster_name

# ansible-core 2.19+ (data tagging) marks inventory variables untrusted itself; before it, they are wrapped as unsafe
# here. ansible.utils.unsafe_proxy is only imported where it is needed: 2.21 marks it for deprecation.
try:
    from ansible.template import trust_as_template  # noqa: F401 pylint: disable=unused-import
    HAS_DATA_TAGGING = True
    wrap_var = None
except ImportError:
    from ansible.utils.unsafe_proxy import wrap_var
    HAS_DATA_TAGGING = False


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "virtfleet.kubevirt.kubevirt"

    def verify_file(self, path):
        return super(InventoryModule, self).verify_file(path) and path.endswith(("kubevirt.yml", "kubevirt.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path)
        # _options holds canonical names only; kubevirt.core's aliases (interface_name, ...) are valid keys too.
        check_unknown_options(self._read_config_data(path), set(self._options) | set(ALIASES), path)
        options = dict((key, self.get_option(key)) for key in tuple(CLUSTER_OPTIONS) + AUTH_OPTIONS)
        connections = build_connections(options, self.get_option("connections"))
        freeze = self.get_option("gc_freeze")
        thawed = gc_thaw() if freeze else False
        with gc_paused():
            self._populate(path, connections, cache)
        if freeze:
            templating = ("compose", "groups", "keyed_groups", "include_filters", "exclude_filters")
            templated = any(self.get_option(option) for option in templating)
            gc_freeze(collect=thawed or templated)

    def _populate(self, path, connections, cache):
        use_cache = self.get_option("cache")
        cache_key = self.get_cache_key(path)
        fingerprint = [c.fetch_fingerprint() for c in connections]
        clusters = cache_util.read(self._cache, cache_key, fingerprint) if use_cache and cache else None
        changed = clusters is None
        apis = {}
        if clusters is None:
            clusters = [self._fetch(conn, apis) for conn in connections]

        for conn, data in zip(connections, clusters):
            if conn.base_domain is None and data.get("cluster_domain"):
                conn.address.base_domain = data["cluster_domain"]
            getter = None
            if "guest_agent_hostname" in conn.address.strategies:
                known = data.setdefault("guest_hostnames", {})
                before = len(known)
                getter = guest_hostname_getter(lambda c=conn: self._api(c, apis), known)
            # translate_errors: an api_tunnel auth file that cannot be written is one sentence too.
            hosts = translate_errors(build_hosts, data, conn.populate, sanitize=self._sanitize_group_name,
                                     guest_hostname=getter, warn=self.display.warning)
            if getter is not None and len(data["guest_hostnames"]) != before:
                changed = True
            self._add_hosts(hosts)

        if use_cache and changed:
            cache_util.write(self._cache, cache_key, fingerprint, clusters, self.get_option)

    def _api(self, conn, apis):
        if conn.index not in apis:
            # conn.auth holds the top-level connection options (get_option, K8S_AUTH_* applied) overridden by
            # the connections entry; the shared plugin adapter turns them into a client.
            try:
                apis[conn.index] = Api(client_from_plugin_options(conn.auth.get), page_size=conn.page_size)
            except AnsibleError as exc:
                if conn.index is None:
                    raise
                raise AnsibleError("connections[%d]: %s" % (conn.index, exc.message))
        return apis[conn.index]

    def _fetch(self, conn, apis):
        api = self._api(conn, apis)
        data = translate_errors(ClusterFetcher(conn, api, self.display.warning).fetch)
        data["name"] = conn.name or default_cluster_name(api.client.host)
        return data

    def _add_hosts(self, hosts):
        strict = self.get_option("strict")
        compose = self.get_option("compose")
        groups = self.get_option("groups")
        keyed_groups = self.get_option("keyed_groups")
        include = self.get_option("include_filters")
        exclude = self.get_option("exclude_filters")
        inventory = self.inventory
        known_groups = set()
        for entry in hosts:
            # ansible-core >= 2.19 never templates strings that are not trusted, and API data is not; older cores
            # template any str unless it is marked unsafe. Host.vars.update() below copies the keys anyway.
            variables = entry.variables if HAS_DATA_TAGGING else dict((k, wrap_var(v)) for k, v in entry.variables.items())
            if (include or exclude) and not self._wanted(entry.name, variables, include, exclude, strict):
                continue
            if entry.cluster_group not in known_groups:
                inventory.add_group(entry.cluster_group)
                known_groups.add(entry.cluster_group)
            if entry.namespace_group not in known_groups:
                inventory.add_group(entry.namespace_group)
                inventory.add_child(entry.cluster_group, entry.namespace_group)
                known_groups.add(entry.namespace_group)
            inventory.add_host(entry.name, group=entry.namespace_group)
            host = inventory.get_host(entry.name)
            # Host.vars directly instead of one set_variable() per key: on ansible-core 2.19 each set_variable
            # deep-copies and origin-tags its value, which costs more than the whole fetch for 10,000 VMs. The
            # keys are new (nothing to merge) and the values untagged, so never trusted as templates.
            host.vars.update(variables)
            for group in entry.label_groups:
                inventory.add_group(group)
                inventory.add_child(group, entry.name)
            if compose or groups or keyed_groups:
                hostvars = host.get_vars()
                self._set_composite_vars(compose, hostvars, entry.name, strict=True)
                self._add_host_to_composed_groups(groups, hostvars, entry.name, strict=strict)
                self._add_host_to_keyed_groups(keyed_groups, hostvars, entry.name, strict=strict)

    def _wanted(self, name, variables, include, exclude, strict):
        variables = dict(variables, inventory_hostname=name)
        for kind, expressions in (("include_filters", include), ("exclude_filters", exclude)):
            for expression in expressions:
                try:
                    matched = bool(self._compose(expression, variables))
                except AnsibleError as exc:
                    if strict:
                        raise AnsibleError("Could not evaluate %s entry %r for host %s: %s" % (kind, expression, name, exc))
                    matched = False
                if matched:
                    if kind == "exclude_filters":
                        return False
                    break
            else:
                if kind == "include_filters" and expressions:
                    return False
        return True
