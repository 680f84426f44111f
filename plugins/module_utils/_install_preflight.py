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

import re

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _install_cr, _kinds
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
