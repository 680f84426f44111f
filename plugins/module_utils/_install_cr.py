# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Pure functions: module options -> KubeVirt and CDI custom resources; the ``emulation: auto`` rule.

Typed options win over the passthroughs: ``configuration`` is merged *under* the typed options into
``spec.configuration``, and ``spec`` under everything into ``spec``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import KubeVirtError

KVM_RESOURCE = 'devices.kubevirt.io/kvm'
EMULATION_MODES = ('auto', True, False)


def deep_merge(base, override):
    """``override`` merged onto a copy of ``base``: dicts recursively, everything else replaced."""
    out = copy.deepcopy(base) if isinstance(base, dict) else {}
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def normalize_emulation(value):
    """``auto`` / true / false (also as the strings YAML users write) -> 'auto', True or False."""
    if isinstance(value, bool):
        return value
    text = str(value if value is not None else 'auto').strip().lower()
    if text == 'auto':
        return 'auto'
    if text in ('true', 'yes', 'on', '1'):
        return True
    if text in ('false', 'no', 'off', '0'):
        return False
    raise KubeVirtError('emulation must be auto, true or false, got "%s".' % value)


def placement(options):
    """``{node_selector, affinity, tolerations}`` -> KubeVirt's ``nodePlacement`` (None when empty)."""
    if not options:
        return None
    out = {}
    if options.get('node_selector'):
        out['nodeSelector'] = dict((str(k), str(v)) for k, v in options['node_selector'].items())
    if options.get('affinity'):
        out['affinity'] = copy.deepcopy(options['affinity'])
    if options.get('tolerations'):
        out['tolerations'] = copy.deepcopy(options['tolerations'])
    return out or None


def _check_gates(enabled, disabled, prefix=''):
    both = sorted(set(enabled or []) & set(disabled or []))
    if both:
        raise KubeVirtError('%sfeature_gates and %sdisabled_feature_gates both list %s: a gate can only be in one of them.'
                            % (prefix, prefix, ', '.join(both)))


def kubevirt_cr(params, namespace, use_emulation):
    """The KubeVirt CR the module applies (only fields the user chose, plus ``useEmulation``)."""
    _check_gates(params.get('feature_gates'), params.get('disabled_feature_gates'))
    developer = {'useEmulation': bool(use_emulation)}
    if params.get('feature_gates'):
        developer['featureGates'] = list(params['feature_gates'])
    if params.get('disabled_feature_gates'):
        developer['disabledFeatureGates'] = list(params['disabled_feature_gates'])
    typed = {'configuration': deep_merge(params.get('configuration') or {}, {'developerConfiguration': developer})}
    if params.get('image_registry'):
        typed['imageRegistry'] = params['image_registry'].rstrip('/')
    if params.get('image_pull_secrets'):
        typed['imagePullSecrets'] = [{'name': n} for n in params['image_pull_secrets']]
    if params.get('image_pull_policy'):
        typed['imagePullPolicy'] = params['image_pull_policy']
    infra = {}
    if placement(params.get('infra_node_placement')):
        infra['nodePlacement'] = placement(params['infra_node_placement'])
    if params.get('infra_replicas') is not None:
        infra['replicas'] = params['infra_replicas']
    if infra:
        typed['infra'] = infra
    if placement(params.get('workloads_node_placement')):
        typed['workloads'] = {'nodePlacement': placement(params['workloads_node_placement'])}
    if params.get('workload_update_methods'):
        typed['workloadUpdateStrategy'] = {'workloadUpdateMethods': list(params['workload_update_methods'])}
    if params.get('uninstall_strategy'):
        typed['uninstallStrategy'] = params['uninstall_strategy']
    return {'apiVersion': 'kubevirt.io/v1', 'kind': 'KubeVirt',
            'metadata': {'name': params.get('name') or 'kubevirt', 'namespace': namespace},
            'spec': deep_merge(params.get('spec') or {}, typed)}


def cdi_cr(cdi, image_pull_secrets=None):
    """The CDI CR (cluster-scoped) from the ``cdi`` suboptions."""
    cdi = cdi or {}
    _check_gates(cdi.get('feature_gates'), [], 'cdi.')
    config = {}
    if cdi.get('feature_gates'):
        config['featureGates'] = list(cdi['feature_gates'])
    if cdi.get('scratch_storage_class'):
        config['scratchSpaceStorageClass'] = cdi['scratch_storage_class']
    if cdi.get('upload_proxy_url'):
        config['uploadProxyURLOverride'] = cdi['upload_proxy_url']
    secrets = cdi.get('image_pull_secrets') or image_pull_secrets
    if secrets:
        config['imagePullSecrets'] = [{'name': n} for n in secrets]
    typed = {}
    merged_config = deep_merge(cdi.get('config') or {}, config)
    if merged_config:
        typed['config'] = merged_config
    infra = {}
    where = placement(cdi.get('infra_node_placement'))
    if where:
        infra.update(where)
    if cdi.get('upload_proxy_replicas') is not None:
        infra['uploadProxyReplicas'] = cdi['upload_proxy_replicas']
    if infra:
        typed['infra'] = infra
    where = placement(cdi.get('workload_node_placement'))
    if where:
        typed['workload'] = where
    if cdi.get('uninstall_strategy'):
        typed['uninstallStrategy'] = cdi['uninstall_strategy']
    if cdi.get('image_pull_policy'):
        typed['imagePullPolicy'] = cdi['image_pull_policy']
    return {'apiVersion': 'cdi.kubevirt.io/v1beta1', 'kind': 'CDI', 'metadata': {'name': 'cdi'},
            'spec': deep_merge(cdi.get('spec') or {}, typed)}


# ---------------------------------------------------------------------------------------------------------------
# emulation: auto


def _node_ready(node):
    for cond in (node.get('status') or {}).get('conditions') or []:
        if cond.get('type') == 'Ready':
            return str(cond.get('status')) == 'True'
    return False


def schedulable_nodes(nodes, node_selector=None):
    """Names of Ready, schedulable nodes whose labels match ``node_selector`` (equality only)."""
    out = []
    for node in nodes:
        labels = (node.get('metadata') or {}).get('labels') or {}
        if (node.get('spec') or {}).get('unschedulable') or not _node_ready(node):
            continue
        if all(labels.get(k) == str(v) for k, v in (node_selector or {}).items()):
            out.append(node)
    return out


def _quantity_nonzero(value):
    text = str(value).strip()
    return text not in ('', '0', '0k', '0m')


def node_kvm(node, kvm_nodes):
    """(usable, source): True/False/None (unknown) and where the answer came from."""
    name = node['metadata']['name']
    if kvm_nodes and name in kvm_nodes and kvm_nodes[name] is not None:
        return bool(kvm_nodes[name]), 'kvm_nodes'
    allocatable = (node.get('status') or {}).get('allocatable') or {}
    if KVM_RESOURCE in allocatable:
        return _quantity_nonzero(allocatable[KVM_RESOURCE]), 'allocatable %s' % KVM_RESOURCE
    return None, None


def decide_emulation(mode, nodes, kvm_nodes=None, node_selector=None, live_value=None):
    """Whether ``useEmulation`` is set, and why.

    The rule for ``auto``, over the nodes that may run VMs (Ready, schedulable, matching the workloads
    node selector): a node's KVM is known from ``kvm_nodes`` (facts of the kvm_host role, keyed by node
    name) or else from its allocatable ``devices.kubevirt.io/kvm`` (virt-handler publishes it once it
    runs; ``0`` means no ``/dev/kvm``). If any such node is known to lack KVM, emulation is on (VMs there
    would not start otherwise). If all are known to have KVM, it is off. If some are unknown and none is
    known to lack KVM, the live CR's value is kept (off for a new CR) and a warning says which nodes
    are unknown.
    """
    decision = {'mode': 'auto' if mode == 'auto' else bool(mode), 'enabled': bool(mode) if mode != 'auto' else False,
                'nodes': {}, 'reason': '', 'warning': None}
    if mode != 'auto':
        decision['reason'] = 'emulation is set to %s' % ('true' if mode else 'false')
        return decision
    candidates = schedulable_nodes(nodes, node_selector)
    lacking, unknown = [], []
    for node in candidates:
        usable, source = node_kvm(node, kvm_nodes)
        name = node['metadata']['name']
        decision['nodes'][name] = usable
        if usable is False:
            lacking.append('%s (%s)' % (name, source))
        elif usable is None:
            unknown.append(name)
    if lacking:
        decision['enabled'] = True
        decision['reason'] = 'nodes that may run VMs lack KVM: %s' % ', '.join(lacking)
    elif not candidates:
        decision['enabled'] = bool(live_value)
        decision['reason'] = 'no Ready schedulable node matches the workloads placement; kept %s' % decision['enabled']
        decision['warning'] = ('emulation auto: no Ready, schedulable node may run VMs, so KVM availability is unknown; '
                               'useEmulation stays %s. Set emulation explicitly to decide.' % decision['enabled'])
    elif unknown:
        decision['enabled'] = bool(live_value)
        decision['reason'] = 'KVM availability unknown for %s; kept %s' % (', '.join(unknown), decision['enabled'])
        decision['warning'] = ('emulation auto: KVM availability of node(s) %s is unknown (no kvm_nodes entry, no '
                               'allocatable %s yet); useEmulation stays %s. Run the kvm_host role and pass its facts '
                               'as kvm_nodes, or set emulation explicitly.'
                               % (', '.join(unknown), KVM_RESOURCE, decision['enabled']))
    else:
        decision['reason'] = 'all %d node(s) that may run VMs have KVM' % len(candidates)
    return decision
