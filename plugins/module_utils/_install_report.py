# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What kubevirt_install reports: the operator CR's state and versions, its components, and why a wait failed."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._compare import condition
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._install_manifest import describe

MAX_LISTED = 20


def cond_text(obj, ctype):
    cond = condition(obj, ctype)
    if cond is None:
        return '%s unknown' % ctype
    detail = cond.get('reason') or ''
    if cond.get('message'):
        detail = '%s: %s' % (detail, cond['message']) if detail else cond['message']
    return '%s=%s%s' % (ctype, cond.get('status'), ' (%s)' % detail if detail else '')


def observed_version(component, obj):
    return ((obj or {}).get('status') or {}).get(component.versions[1])


def target_version_of(component, obj):
    return ((obj or {}).get('status') or {}).get(component.versions[0])


def state_of(component, obj):
    """One entry of ``transitions``: what the CR said at one moment."""
    status = (obj or {}).get('status') or {}
    cond = condition(obj or {}, 'Progressing') or condition(obj or {}, 'Available') or {}
    return {'phase': status.get('phase') or '', 'available': (condition(obj, 'Available') or {}).get('status'),
            'progressing': (condition(obj, 'Progressing') or {}).get('status'),
            'degraded': (condition(obj, 'Degraded') or {}).get('status'), 'reason': cond.get('reason'),
            'target_version': target_version_of(component, obj), 'observed_version': observed_version(component, obj)}


def workload_state(obj):
    """(ready, 'x/y ready[: why]') of a Deployment or DaemonSet."""
    status = obj.get('status') or {}
    if obj.get('kind') == 'DaemonSet':
        want, ready = status.get('desiredNumberScheduled', 0), status.get('numberReady', 0)
    else:
        want, ready = (obj.get('spec') or {}).get('replicas', 1), status.get('readyReplicas', 0) or 0
    stale = status.get('observedGeneration') is not None and \
        status.get('observedGeneration') < (obj.get('metadata') or {}).get('generation', 0)
    why = ''
    for cond in status.get('conditions') or []:
        if cond.get('status') != 'True' or 'BackOff' in (cond.get('message') or ''):
            if cond.get('message') and (cond.get('status') != 'True' or 'BackOff' in cond['message']):
                why = cond['message']
    text = '%s/%s ready%s%s' % (ready, want, ', rollout pending' if stale else '', ': %s' % why if why else '')
    return ready >= want and not stale, text


def components(list_or_empty, namespace):
    """(not-ready descriptions, all states) of the Deployments and DaemonSets in the operator namespace."""
    states, bad = [], []
    for kind in (_kinds.DEPLOYMENT, _kinds.DAEMONSET):
        items, _rv = list_or_empty(kind, namespace)
        for obj in items:
            ok, text = workload_state(obj)
            name = '%s %s' % (kind.kind, obj['metadata']['name'])
            states.append({'kind': kind.kind, 'name': obj['metadata']['name'], 'ready': ok, 'state': text})
            if not ok:
                bad.append('%s %s' % (name, text))
    return bad, states


def timeout_report(prep, obj, target, timeout, bad):
    """Why the CR of ``prep`` (an InstallPlan) did not become ready: its state, the components not ready (``bad``)."""
    component = prep.component
    where = describe(prep.cr)
    if obj is None:
        state = 'it does not exist'
    elif not (obj.get('status') or {}).get('phase') and not (obj.get('status') or {}).get('conditions'):
        state = 'it has no status yet, so the %s is not running' % component.operator
    else:
        status = obj.get('status') or {}
        state = 'phase %s, target version %s, observed version %s; conditions: %s' % (
            status.get('phase') or '(none)', target_version_of(component, obj) or '(none)',
            observed_version(component, obj) or '(none)',
            ', '.join(cond_text(obj, c) for c in ('Available', 'Progressing', 'Degraded')))
    parts = ['%s did not reach phase Deployed, Available=True, Progressing=False, Degraded=False at version %s '
             'within %ss: %s.' % (where, target, timeout, state)]
    if bad:
        parts.append('Not ready: %s.' % '; '.join(bad[:MAX_LISTED]).rstrip('.'))
    else:
        parts.append('All Deployments/DaemonSets in namespace %s report ready.' % prep.namespace)
    parts.append('Check that the images can be pulled (image_registry, image_pull_secrets) and the events of the '
                 'pods in namespace %s, or raise wait_timeout.' % prep.namespace)
    return ' '.join(parts)


def stuck_report(prep, obj, timeout):
    """Why the CR of ``prep`` (a RemovalPlan) is still there: its phase and finalizers."""
    component = prep.component
    status = obj.get('status') or {}
    finalizers = (obj.get('metadata') or {}).get('finalizers') or []
    return ('%s was not removed within %ss: phase %s, finalizers %s. The %s removes its finalizer once the '
            'components are gone; if the operator is no longer running, remove the finalizers with a JSON patch. '
            'The operator objects were left in place.' % (describe(obj), timeout, status.get('phase') or '(none)',
                                                          ', '.join(finalizers) or '(none)', component.operator))
