# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""kubevirt_install orchestration: install/upgrade (state present) and uninstall (state absent).

Present: operator manifest objects in file order, then the CR; each object is read once and written
(server-side apply, field manager ``virtfleet.kubevirt``) only when live does not already hold what the
module would apply (``_compare.differences``) or the applied-digest annotation differs (a dropped field).
Then one watch per CR waits for Deployed / Available / not Progressing / not Degraded at the target version.
Absent: refuse when the uninstall strategy blocks and workloads exist (before any write), delete the CR,
wait until it is gone, then delete the operator objects in reverse order plus the leftovers the user
guide names.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import time

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import (
    _install_cr,
    _install_report,
    _install_manifest,
    _install_preflight,
    _kinds,
)
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._api import api_missing
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._compare import condition_is
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ApiError, KubeVirtError, WaitTimeout
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._install_manifest import CDI, KUBEVIRT, describe
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._install_report import (
    observed_version,
    state_of,
    target_version_of,
)
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._resource import OWNED, Engine, WatchStore
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._waiter import Waiter

BLOCK = 'BlockUninstallIfWorkloadsExist'
MAX_LISTED = 20

# Operator objects by name, for uninstalling without a manifest (same names as the release manifests).
KNOWN_OBJECTS = {
    'kubevirt': [(_kinds.NAMESPACE, None, 'kubevirt'), (_kinds.CRD, None, 'kubevirts.kubevirt.io'),
                 (_kinds.PRIORITYCLASS, None, 'kubevirt-cluster-critical'), (_kinds.CLUSTERROLE, None, 'kubevirt.io:operator'),
                 (_kinds.SERVICEACCOUNT, 'kubevirt', 'kubevirt-operator'), (_kinds.ROLE, 'kubevirt', 'kubevirt-operator'),
                 (_kinds.ROLEBINDING, 'kubevirt', 'kubevirt-operator-rolebinding'),
                 (_kinds.CLUSTERROLE, None, 'kubevirt-operator'), (_kinds.CLUSTERROLEBINDING, None, 'kubevirt-operator'),
                 (_kinds.DEPLOYMENT, 'kubevirt', 'virt-operator')],
    'cdi': [(_kinds.NAMESPACE, None, 'cdi'), (_kinds.CRD, None, 'cdis.cdi.kubevirt.io'),
            (_kinds.CLUSTERROLE, None, 'cdi-operator-cluster'), (_kinds.CLUSTERROLEBINDING, None, 'cdi-operator'),
            (_kinds.SERVICEACCOUNT, 'cdi', 'cdi-operator'), (_kinds.ROLE, 'cdi', 'cdi-operator'),
            (_kinds.ROLEBINDING, 'cdi', 'cdi-operator'), (_kinds.DEPLOYMENT, 'cdi', 'cdi-operator')],
}
# Created by virt-operator and left behind by an uninstall (user guide, "Deleting KubeVirt").
LEFTOVERS = {
    'kubevirt': [(_kinds.APISERVICE, None, 'v1.subresources.kubevirt.io'),
                 (_kinds.MUTATINGWEBHOOKCONFIGURATION, None, 'virt-api-mutator'),
                 (_kinds.VALIDATINGWEBHOOKCONFIGURATION, None, 'virt-operator-validator'),
                 (_kinds.VALIDATINGWEBHOOKCONFIGURATION, None, 'virt-api-validator')],
    'cdi': [],
}
SERVER_FIELDS = ('managedFields', 'resourceVersion', 'uid', 'creationTimestamp', 'generation', 'selfLink')


def version_tuple(version):
    match = _install_manifest.VERSION_RE.match(version or '')
    return tuple(int(match.group(i)) for i in (1, 2, 3)) if match else None


def trimmed(obj):
    """An object as shown in diffs: no status, no server-managed metadata."""
    if obj is None:
        return None
    out = copy.deepcopy(obj)
    out.pop('status', None)
    meta = out.get('metadata') or {}
    for key in SERVER_FIELDS:
        meta.pop(key, None)
    return out


def is_ready(component, obj, target):
    """The issue's definition of done, plus: the operator has seen the latest spec (observedGeneration)."""
    if obj is None or (obj.get('metadata') or {}).get('deletionTimestamp'):
        return False
    status = obj.get('status') or {}
    if status.get('phase') != 'Deployed':
        return False
    if not (condition_is(obj, 'Available', 'True') and condition_is(obj, 'Progressing', 'False')
            and condition_is(obj, 'Degraded', 'False')):
        return False
    if observed_version(component, obj) != target:
        return False
    if component.tracks_generation:
        if target_version_of(component, obj) not in (None, target):
            return False
        generation = (obj.get('metadata') or {}).get('generation')
        if status.get('observedGeneration') is not None and generation is not None and \
                status['observedGeneration'] < generation:
            return False
    return True


class InstallPlan(object):
    """What installing one Component means: its manifest objects, CR and versions (state present)."""

    def __init__(self, component, options, objects, version, source, live, namespace, previous):
        self.component = component
        self.options = options          # the component's own options (the top level for KubeVirt, cdi for CDI)
        self.objects = objects          # the operator manifest, customized
        self.version = version
        self.source = source            # where the manifest came from
        self.live = live                # the CR as read, or None
        self.namespace = namespace      # the operator's namespace
        self.previous = previous        # the version the live CR reports
        self.emulation = None           # cluster checks only: the emulation decision
        self.cluster = None             # cluster checks only: the facts they found
        self.cr = None                  # the CR to apply
        self.cr_result = None           # the CR as applied (or predicted)


class RemovalPlan(object):
    """What uninstalling one Component means: its CR and the operator objects to delete, in order."""

    def __init__(self, component, namespace, live, removals, previous):
        self.component = component
        self.namespace = namespace
        self.live = live
        self.removals = removals        # (kind, live object), namespace last
        self.previous = previous


class Installer(object):
    """One task run. ``warn`` receives warnings; ``fetch`` downloads URLs (replaced in unit tests)."""

    def __init__(self, api, params, check_mode=False, diff_mode=False, warn=None, fetch=None, clock=time.monotonic):
        self.api = api
        self.params = params
        self.check_mode = check_mode
        self.diff_mode = diff_mode
        self.warn = warn or (lambda msg: None)
        self.fetch = fetch or _install_manifest.fetch_url
        self.clock = clock
        self.resolver = _install_manifest.KindResolver(api)
        self.changed = False
        self.objects = []
        self.diff = {'before': {}, 'after': {}}
        self.transitions = {}
        self.engine = Engine(api, check_mode=check_mode)
        self.deadline = None
        self._loaded = {}

    # --- shared ------------------------------------------------------------------------------------------
    def _record(self, kind, obj, action, before=None, after=None):
        meta = obj.get('metadata') or {}
        self.objects.append({'kind': kind.kind, 'name': meta.get('name'), 'namespace': meta.get('namespace'),
                             'action': action})
        if action not in ('unchanged', 'absent'):
            self.changed = True
            key = describe(obj)
            self.diff['before'][key] = trimmed(before) or {}
            self.diff['after'][key] = trimmed(after) or {}

    def _remaining(self):
        return max(0.0, self.deadline - self.clock())

    def _load(self, component, source):
        if component.key in self._loaded:
            return self._loaded[component.key]
        self._loaded[component.key] = self._read_manifest(component, source)
        return self._loaded[component.key]

    def _read_manifest(self, component, source):
        version = _install_manifest.normalize_version(source.get('version'), self._opt(component, 'version'))
        text, where = _install_manifest.read_source(component, version, source.get('manifest_url'),
                                                    source.get('manifest_path'),
                                                    validate_certs=self.params.get('manifest_validate_certs', True),
                                                    fetch=self.fetch, prefix=component.prefix)
        objects = _install_manifest.parse(text, where)
        manifest_version = _install_manifest.manifest_version(component, objects)
        if version and manifest_version != version:
            raise KubeVirtError('%s is %s but the manifest %s deploys %s: make them agree (or leave %s unset to use the '
                                'manifest\'s version).' % (self._opt(component, 'version'), version, where,
                                                           manifest_version, self._opt(component, 'version')))
        return objects, manifest_version, where

    @staticmethod
    def _opt(component, name):
        return component.option(name)

    # --- present -----------------------------------------------------------------------------------------
    def present(self, cdi_options):
        p = self.params
        result = {'kubevirt': None, 'cdi': None}
        plans = []
        if p.get('state') == 'present':
            plans.append((KUBEVIRT, p))
        if cdi_options is not None and cdi_options.get('state') == 'present':
            plans.append((CDI, cdi_options))
        prepared = [self._prepare(component, source) for component, source in plans]
        for prep in prepared:
            self._apply_objects(prep)
            prep.cr_result = self._apply_cr(prep)
        for prep in prepared:
            key = prep.component.key
            result[key] = prep.cr_result
            result['%s_version' % key] = prep.version
            result['%s_previous_version' % key] = prep.previous
            result['%s_manifest' % key] = prep.source
            if p.get('wait') and not self.check_mode:
                result[key] = self._wait_ready(prep)
            if prep.emulation is not None:
                result['emulation'] = prep.emulation
                result['cluster'] = prep.cluster
        return result

    def _prepare(self, component, source):
        p = self.params
        objects, version, where = self._load(component, source)
        registry = component.setting(source, p, 'image_registry')
        secrets = component.setting(source, p, 'image_pull_secrets')
        objects = _install_manifest.customize(component, objects, registry, secrets)
        deployment = _install_manifest.operator_deployment(component, objects)
        namespace = deployment['metadata'].get('namespace') or component.namespace
        live_crs, _rv = self._list_or_empty(component.cr_kind)
        cr_name = component.name_in(p)
        live = None
        for obj in live_crs:
            meta = obj.get('metadata') or {}
            if meta.get('name') == cr_name and meta.get('namespace') == component.cr_namespace(namespace):
                live = obj
            elif not meta.get('deletionTimestamp'):
                raise KubeVirtError('Another %s resource exists (%s): only one is honoured per cluster. Manage that one '
                                    '(name%s) or delete it first.' % (component.title, describe(obj),
                                                                      ' and the manifest namespace'
                                                                      if component.cr_kind.namespaced else ''))
        if live is not None and (live.get('metadata') or {}).get('deletionTimestamp'):
            raise KubeVirtError('%s is being deleted: wait until it is gone (state=absent), then install again.'
                                % describe(live))
        previous = observed_version(component, live)
        self._check_version_step(component, previous, version)
        prep = InstallPlan(component, source, objects, version, where, live, namespace, previous)
        if component.cluster_checks:
            mode = _install_cr.normalize_emulation(p.get('emulation'))
            selector = ((p.get('workloads_node_placement') or {}).get('node_selector'))
            facts, nodes = self._preflight(version, selector)
            prep.cluster = facts
            live_emulation = (((((live or {}).get('spec') or {}).get('configuration') or {})
                               .get('developerConfiguration') or {}).get('useEmulation'))
            decision = _install_cr.decide_emulation(mode, nodes, p.get('kvm_nodes'), selector, live_emulation)
            warning = decision.pop('warning')
            if warning:
                self.warn(warning)
            prep.emulation = decision
        prep.cr = self._build_cr(component, source, namespace, (prep.emulation or {}).get('enabled'))
        return prep

    def _build_cr(self, component, source, namespace, emulation):
        p = self.params
        builders = {KUBEVIRT.key: lambda: _install_cr.kubevirt_cr(p, namespace, emulation),
                    CDI.key: lambda: _install_cr.cdi_cr(source, p.get('image_pull_secrets'))}
        return builders[component.key]()

    def _preflight(self, version, selector):
        facts, nodes = _install_preflight.cluster_facts(self.api, version, self.params.get('supported_kubernetes'),
                                                        selector)
        warning = facts.pop('warning')
        if warning:
            self.warn(warning)
        if not facts['schedulable_nodes']:
            self.warn('No Ready, schedulable node may run VMs%s; KubeVirt installs but no VM can start.'
                      % (' (workloads node selector %s)' % selector if selector else ''))
        return facts, nodes

    def preflight_only(self):
        """Read-only: the facts the role checks before installing (no manifest download when version is set)."""
        p = self.params
        version = _install_manifest.normalize_version(p.get('version'), 'version')
        if not version:
            version = self._load(KUBEVIRT, p)[1]
        selector = (p.get('workloads_node_placement') or {}).get('node_selector')
        facts, _nodes = _install_preflight.cluster_facts(self.api, version, p.get('supported_kubernetes'), selector)
        warning = facts.pop('warning')
        if warning:
            self.warn(warning)
        _install_preflight.require_schedulable(facts, selector)
        return {'changed': False, 'cluster': facts, 'objects': []}

    def _check_version_step(self, component, previous, version):
        old, new = version_tuple(previous), version_tuple(version)
        if not old or not new:
            return
        if new < old:
            raise KubeVirtError('%s %s is installed and %s was requested: downgrades are not supported by the operator. '
                                'Uninstall first (state=absent) or request %s or later.'
                                % (component.title, previous, version, previous))
        if new[0] == old[0] and new[1] > old[1] + 1:
            self.warn('%s upgrade from %s to %s skips minor releases; the supported path is one minor at a time '
                      '(latest patch of each).' % (component.title, previous, version))

    def _list_or_empty(self, kind, namespace=None):
        try:
            return self.api.list(kind, namespace)
        except ApiError as err:
            if api_missing(err):
                return [], None
            raise

    def _apply_objects(self, prep):
        for obj in prep.objects:
            kind = self.resolver(obj['apiVersion'], obj['kind'])
            self._sync(kind, obj)
        self._check_pull_secrets(prep)

    def _check_pull_secrets(self, prep):
        p = self.params
        component = prep.component
        names = component.setting(prep.options, p, 'image_pull_secrets')
        if not names or (self.check_mode and prep.namespace in self.engine.pending_namespaces):
            return
        missing = [n for n in names if self.api.get(_kinds.SECRET, n, prep.namespace) is None]
        if missing:
            self.warn('Image pull secret(s) %s do not exist in namespace %s: the %s pods cannot pull from the mirror '
                      'until they do.' % (', '.join(missing), prep.namespace, component.title))

    def _sync(self, kind, obj, live=None, known_live=False):
        """Apply ``obj`` unless live already holds it; returns the resulting (or predicted) object."""
        meta = obj.get('metadata') or {}
        namespace = meta.get('namespace') if kind.namespaced else None
        if not known_live:
            live = self._get(kind, meta['name'], namespace)
        outcome = self.engine.ensure(kind, obj, live, mode=OWNED)
        self._record(kind, obj, outcome.action, outcome.before, outcome.after)
        return outcome.after

    def _get(self, kind, name, namespace):
        return self.engine.read(kind, name, namespace)

    def _apply_cr(self, prep):
        component = prep.component
        return self._sync(component.cr_kind, prep.cr, live=prep.live, known_live=True)

    # --- waits -------------------------------------------------------------------------------------------
    def _wait_ready(self, prep):
        component, cr = prep.component, prep.cr
        # KubeVirt's CR may pin the image tag (it then reports that as its version).
        target = cr['spec'].get('imageTag') or prep.version
        namespace = component.cr_namespace(prep.namespace)
        name = cr['metadata']['name']
        seen = self.transitions.setdefault(component.key, [])

        def predicate(obj):
            state = state_of(component, obj)
            if not seen or seen[-1] != state:
                seen.append(state)
            return is_ready(component, obj, target)

        # Watch from the CR as it was before this run wrote anything (or as created), not from a fresh list:
        # the server replays every status change since, so a quick operator's UpdateInProgress is not missed.
        start = prep.live if prep.live is not None else prep.cr_result
        version = ((start or {}).get('metadata') or {}).get('resourceVersion')
        initial = ([start], version) if version else None
        try:
            found = Waiter(self.api).wait(component.cr_kind, predicate, self._remaining(), namespace=namespace,
                                          name=name, goal='deployed', initial=initial)
        except WaitTimeout as exc:
            last = exc.resources[-1] if exc.resources else None
            bad, states = _install_report.components(self._list_or_empty, prep.namespace)
            raise KubeVirtError(_install_report.timeout_report(prep, last, target, self.params.get('wait_timeout'), bad),
                                pending=exc.pending, components=states, transitions=self.transitions,
                                objects=self.objects, changed=self.changed)
        return found[0] if found else None

    def _wait_gone(self, kind, name, namespace):
        """Watch until the object is gone; returns the last state seen if time ran out, else None."""
        store = WatchStore(self.api, kind, namespace, names=[name], clock=self.clock).load()
        store.until(lambda st: st.get(name, namespace) is None, self.deadline)
        return store.get(name, namespace)

    # --- absent ------------------------------------------------------------------------------------------
    def absent(self, cdi_options):
        p = self.params
        result = {'kubevirt': None, 'cdi': None}
        plans = []
        if p.get('state') == 'absent':
            plans.append((KUBEVIRT, p))
        if cdi_options is not None and cdi_options.get('state') == 'absent':
            plans.append((CDI, cdi_options))
        prepared = []
        for component, source in plans:
            prepared.append(self._prepare_removal(component, source))
        # The guards run for every component before anything is deleted: a refusal changes nothing.
        for prep in prepared:
            self._guard_uninstall(prep)
        for prep in prepared:
            if prep.live is not None:
                self._delete(prep.component.cr_kind, prep.live)
        for prep in prepared:
            if prep.live is not None and not self.check_mode:
                component = prep.component
                left = self._wait_gone(component.cr_kind, prep.live['metadata']['name'],
                                       component.cr_namespace(prep.namespace))
                if left is not None:
                    raise KubeVirtError(_install_report.stuck_report(prep, left, self.params.get('wait_timeout')),
                                        objects=self.objects, changed=self.changed)
        for prep in prepared:
            for kind, obj in prep.removals:
                self._delete(kind, obj)
            result['%s_previous_version' % prep.component.key] = prep.previous
        return result

    def _prepare_removal(self, component, source):
        p = self.params
        if source.get('version') or source.get('manifest_url') or source.get('manifest_path'):
            objects, _version, _where = self._load(component, source)
            entries = []
            for obj in objects:
                kind = self.resolver(obj['apiVersion'], obj['kind'])
                entries.append((kind, _install_manifest.object_namespace(obj, kind), obj['metadata']['name']))
            namespace = _install_manifest.operator_deployment(component, objects)['metadata'].get('namespace') or \
                component.namespace
        else:
            namespace = (p.get('namespace') if component.name_option else None) or component.namespace
            entries = [(kind, namespace if ns else None, namespace if kind == _kinds.NAMESPACE else name)
                       for kind, ns, name in KNOWN_OBJECTS[component.key]]
        live = self._get(component.cr_kind, component.name_in(p), component.cr_namespace(namespace))
        removals = []
        for kind, ns, name in list(reversed(entries)) + LEFTOVERS[component.key]:
            if kind == component.cr_kind:
                continue
            obj = self._get(kind, name, ns)
            if obj is not None:
                removals.append((kind, obj))
            else:
                self.objects.append({'kind': kind.kind, 'name': name, 'namespace': ns, 'action': 'absent'})
        # The namespace goes last, after the cluster-scoped leftovers.
        removals.sort(key=lambda item: item[0] == _kinds.NAMESPACE)
        return RemovalPlan(component, namespace, live, removals, observed_version(component, live))

    def _guard_uninstall(self, prep):
        live = prep.live
        if live is None or ((live.get('spec') or {}).get('uninstallStrategy') != BLOCK):
            return
        component = prep.component
        found = []
        for kind, label in component.workloads:
            items, _rv = self._list_or_empty(kind)
            items = [i for i in items if not any(r.get('kind') == component.ignored_owner
                                                 for r in (i.get('metadata') or {}).get('ownerReferences') or [])]
            names = ['%s/%s' % (i['metadata'].get('namespace'), i['metadata']['name']) for i in items]
            if names:
                found.append('%d %s (%s%s)' % (len(names), label, ', '.join(names[:MAX_LISTED]),
                                               ', ...' if len(names) > MAX_LISTED else ''))
        if found:
            raise KubeVirtError('Refusing to uninstall %s: %s has uninstallStrategy %s and these workloads exist: %s. '
                                'Nothing was changed. Delete the workloads first, or set uninstall_strategy: '
                                'RemoveWorkloads (state=present) to uninstall with them.'
                                % (component.title, describe(live), BLOCK, '; '.join(found)),
                                workloads=found, changed=False)

    def _delete(self, kind, obj):
        outcome = self.engine.delete(kind, obj)
        # absent: it went away on its own since it was read (the operator removes some of its objects).
        self._record(kind, obj, outcome.action, obj, None)

    # --- entry -------------------------------------------------------------------------------------------
    def run(self):
        p = self.params
        self.deadline = self.clock() + float(p.get('wait_timeout') or 0)
        if p.get('preflight_only'):
            return self.preflight_only()
        cdi_options = p.get('cdi')
        if cdi_options is not None:
            cdi_options = dict(cdi_options)
            cdi_options['state'] = cdi_options.get('state') or p.get('state')
        # Every manifest is read and checked before the first request: a bad one fails the task with nothing sent.
        for component, source in ((KUBEVIRT, p), (CDI, cdi_options)):
            if source is not None and (source.get('state') == 'present' or source.get('version')
                                       or source.get('manifest_url') or source.get('manifest_path')):
                self._load(component, source)
        result = {}
        # Removals first (a CDI removal with KubeVirt present and vice versa), then installs.
        result.update(self.absent(cdi_options))
        for key, value in self.present(cdi_options).items():
            if value is not None or key not in result:
                result[key] = value
        result.update({'changed': self.changed, 'objects': self.objects, 'transitions': self.transitions})
        if self.diff_mode:
            result['diff'] = self.diff
        return result
