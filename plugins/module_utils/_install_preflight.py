# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Preflight facts for an install: API reachable, Kubernetes version vs the KubeVirt release, schedulable nodes.

KubeVirt supports "one of the 3 latest Kubernetes minors at release time" (kubevirt docs/kubernetes-compatibility.md).
The table applies that rule to the release dates (v1.8: early 2026, v1.9.0: 2026-07-27); the
``supported_kubernetes`` option overrides it when a release says otherwise.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _args, _install_cr, _install_manifest, _kinds
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._args import InvalidOption
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import KubeVirtError

SUPPORTED_KUBERNETES = {
    (1, 8): ('1.33', '1.35'),
    (1, 9): ('1.34', '1.36'),
}


def minor_of(text):
    """``v1.34.2+k3s1`` / ``1.34`` -> (1, 34); None when unparsable."""
    match = re.match(r'^v?(\d+)\.(\d+)', str(text or '').strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def supported_range(kubevirt_version, override=None):
    """(min, max) Kubernetes minors as strings, or None when unknown."""
    if override and override.get('min') and override.get('max'):
        return str(override['min']), str(override['max'])
    return SUPPORTED_KUBERNETES.get(minor_of(kubevirt_version))


def check_kubernetes(kubernetes_version, kubevirt_version, override=None):
    """A warning sentence when the cluster's Kubernetes is outside what the KubeVirt release supports, else None."""
    bounds = supported_range(kubevirt_version, override)
    have = minor_of(kubernetes_version)
    if not bounds or not have:
        return None
    low, high = minor_of(bounds[0]), minor_of(bounds[1])
    if low <= have <= high:
        return None
    return ('Kubernetes %s is outside what KubeVirt %s supports (%s to %s): the install may work, but it is not tested '
            'upstream. Pick a KubeVirt release for this Kubernetes version, or set supported_kubernetes if the release '
            'notes say otherwise.' % (kubernetes_version, kubevirt_version, bounds[0], bounds[1]))


def cluster_facts(api, kubevirt_version=None, override=None, node_selector=None):
    """One GET /version and one list of Nodes -> (facts for the role's preflight, the Node objects)."""
    version = api.client.request('GET', '/version', what='the API server version', verb='get') or {}
    nodes, _rv = api.list(_kinds.NODE)
    schedulable = [n['metadata']['name'] for n in _install_cr.schedulable_nodes(nodes, node_selector)]
    git_version = version.get('gitVersion') or '%s.%s' % (version.get('major'), version.get('minor'))
    bounds = supported_range(kubevirt_version, override)
    return {'kubernetes_version': git_version, 'nodes': len(nodes), 'schedulable_nodes': schedulable,
            'kubevirt_version': kubevirt_version,
            'kubernetes_supported': {'min': bounds[0], 'max': bounds[1]} if bounds else None,
            'warning': check_kubernetes(git_version, kubevirt_version, override) if kubevirt_version else None}, nodes


def require_schedulable(facts, selector=None):
    if not facts['schedulable_nodes']:
        raise KubeVirtError('No Ready, schedulable node%s: KubeVirt needs at least one node to run virt-handler and VMs. '
                            'Fix the nodes (kubectl get nodes) or the workloads node placement.'
                            % (' matches the workloads node selector %s' % selector if selector else ''), cluster=facts)


def _check_placement(placement, option):
    for key, value in ((placement or {}).get('node_selector') or {}).items():
        _args.check_label_key(key, option + '.node_selector')
        _args.check_label_value(key, value, option + '.node_selector')


def _check_source(source, prefix):
    """version / manifest_path / image_registry / image_pull_secrets of KubeVirt (prefix '') or CDI ('cdi.')."""
    try:
        _install_manifest.normalize_version(source.get('version'), prefix + 'version')
    except KubeVirtError as exc:
        raise InvalidOption(exc.msg)
    path = source.get('manifest_path')
    if path and not os.path.isfile(os.path.expanduser(path)):
        raise InvalidOption('%smanifest_path %s does not exist on the host running the task: give the path of the '
                            'downloaded operator manifest, or use %sversion.' % (prefix, path, prefix))
    url = source.get('manifest_url')
    if url and not re.match(r'^(https?|file)://\S+$', url):
        raise InvalidOption('%smanifest_url "%s" is not an http(s) URL: give the release asset URL, or a local file as '
                            '%smanifest_path.' % (prefix, url, prefix))
    if source.get('image_registry'):
        _args.check_registry(source['image_registry'], prefix + 'image_registry')
    for name in source.get('image_pull_secrets') or []:
        _args.check_dns_subdomain(name, prefix + 'image_pull_secrets', 'Secret name')
    _check_placement(source.get('infra_node_placement'), prefix + 'infra_node_placement')


def _check_cr_spec(spec, option, kind):
    whole = [key for key in ('apiVersion', 'kind', 'metadata') if key in (spec or {})]
    if whole:
        raise InvalidOption('%s has %s, so it looks like a whole %s resource: give only the contents of its spec '
                            '(e.g. configuration, infra), without apiVersion, kind and metadata.' % (option, ', '.join(whole), kind))


def check_params(params):
    """Validate kubevirt_install options before any request or download; raises InvalidOption."""
    _args.check_seconds(params.get('wait_timeout'), 'wait_timeout')
    if params.get('name'):
        _args.check_dns_subdomain(params['name'], 'name', 'KubeVirt resource name')
    if params.get('namespace'):
        _args.check_dns_label(params['namespace'], 'namespace', 'namespace name')
    _check_source(params, '')
    _check_cr_spec(params.get('spec'), 'spec', 'KubeVirt')
    try:
        _install_cr.normalize_emulation(params.get('emulation'))
        _install_cr.kubevirt_cr(params, params.get('namespace') or 'kubevirt', False)
    except KubeVirtError as exc:
        raise InvalidOption(exc.msg)
    if params.get('infra_replicas') is not None and params['infra_replicas'] < 1:
        raise InvalidOption('infra_replicas must be 1 or more, got %s.' % params['infra_replicas'])
    _check_placement(params.get('workloads_node_placement'), 'workloads_node_placement')
    bounds = params.get('supported_kubernetes') or {}
    for key in ('min', 'max'):
        if bounds.get(key) is not None and not minor_of(bounds[key]):
            raise InvalidOption('supported_kubernetes.%s "%s" is not a Kubernetes version: write it like 1.34.'
                                % (key, bounds[key]))
    if bool(bounds.get('min')) != bool(bounds.get('max')):
        raise InvalidOption('supported_kubernetes needs both min and max, such as {min: "1.34", max: "1.36"}.')
    cdi = params.get('cdi')
    if cdi is not None:
        _check_source(cdi, 'cdi.')
        _check_cr_spec(cdi.get('spec'), 'cdi.spec', 'CDI')
        _check_placement(cdi.get('workload_node_placement'), 'cdi.workload_node_placement')
        if cdi.get('upload_proxy_replicas') is not None and cdi['upload_proxy_replicas'] < 1:
            raise InvalidOption('cdi.upload_proxy_replicas must be 1 or more, got %s.' % cdi['upload_proxy_replicas'])
        if cdi.get('scratch_storage_class'):
            _args.check_dns_subdomain(cdi['scratch_storage_class'], 'cdi.scratch_storage_class', 'StorageClass name')
        try:
            _install_cr.cdi_cr(cdi, params.get('image_pull_secrets'))
        except KubeVirtError as exc:
            raise InvalidOption(exc.msg)
