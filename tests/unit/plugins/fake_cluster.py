"""A small Kubernetes API with KubeVirt in memory, plugged in as the urllib3 pool of the real ``_client.Client``.

``Api(make_client(FakeCluster()))`` runs the code under test through the real Api and Client: paths, queries,
patch content types, DeleteOptions bodies, Status error bodies, retries and watch streams are all the real
ones. The cluster keeps objects per (plural, namespace, name) with resourceVersion, uid and generation and
answers GET, list (label and field selectors), watch, POST (dryRun, generateName), PATCH (merge, JSON,
apply), PUT (409 on a stale resourceVersion) and DELETE (preconditions, dryRun). KubeVirt's share is small:
webhooks that add MAC addresses and a machine type (kubemacpool), the start/stop/restart subresources of
``subresources.kubevirt.io`` and a controller that reconciles VMs and their VMIs whenever somebody watches
(``converge=False``: never). Patch and selector logic come from the emulator (tests/kubeapi), not written again.

Every request is kept in ``requests``; ``sent()`` / ``writes()`` give them as (method, path, query) for
assertions. ``intercept`` injects faults (a dropped connection, a 503, another tool's write in between).
The module sends the writes of several VMs concurrently: requests are served one at a time (a lock), in the order
they arrive, which is not the order of the VMs; intercept handlers run outside that lock.
"""
import copy
import itertools
import threading
from types import SimpleNamespace
from urllib.parse import unquote

import urllib3

from tests.kubeapi.patch import PatchError, json_patch, merge_patch
from tests.kubeapi.selectors import SelectorError, match_fields, match_labels, parse_field_selector, parse_label_selector

from .kube_fakes import Request, response, status_body, watch_body

VMS, VMIS = 'virtualmachines', 'virtualmachineinstances'
SUBRESOURCES_GROUP = 'subresources.kubevirt.io'
PATCH_TYPES = {'application/merge-patch+json': 'merge', 'application/json-patch+json': 'json',
               'application/apply-patch+yaml': 'apply'}
RUNNING = ('Always', 'RerunOnFailure')


def dropped():
    """What urllib3 raises when the server closes the connection before it answers."""
    return urllib3.exceptions.ProtocolError('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))


def unavailable():
    return response(503, status_body(503, 'ServiceUnavailable', 'the server is currently unable to handle the request'))


class Refused(Exception):
    """A request the cluster answers with a Status error."""

    def __init__(self, code, reason, message, name=None, kind=None):
        super().__init__(message)
        self.answer = response(code, status_body(code, reason, message, name=name, kind=kind))


def _order(item):
    plural, namespace, name = item[0]
    return plural, namespace or '', name


def _strategy(spec):
    if spec.get('runStrategy'):
        return spec['runStrategy']
    return 'Always' if spec.get('running') else 'Halted'


def _without_version(obj):
    out = copy.deepcopy(obj)
    out['metadata'].pop('resourceVersion', None)
    return out


def _interfaces(vm):
    return ((((vm.get('spec') or {}).get('template') or {}).get('spec') or {}).get('domain') or {}) \
        .get('devices', {}).get('interfaces', [])


class FakeCluster:
    """The urllib3 pool of ``_client.Client``: ``request`` answers from the objects it keeps."""

    def __init__(self, converge=True):
        self.objects = {}           # (plural, namespace, name) -> object
        self.events = []            # (resourceVersion, type, plural, object) for watches
        self.requests = []          # every kube_fakes.Request, in order
        self.intercepts = []        # (method, path, handler)
        self.reject = {}            # VM name -> the invalid-field message its writes get (422)
        self.restart_required = set()   # (namespace, name): template changed under a running VMI
        self.converge = converge
        self.rv = 100
        self._uids = itertools.count(1)
        self._lock = threading.RLock()

    # --- what tests read and arrange ------------------------------------------------------------------------
    def get(self, plural, name, namespace='ns'):
        return copy.deepcopy(self.objects.get((plural, namespace, name)))

    def vm(self, name, namespace='ns'):
        return self.get(VMS, name, namespace)

    def vmi(self, name, namespace='ns'):
        return self.get(VMIS, name, namespace)

    def items(self, plural=VMS, namespace=None):
        return [copy.deepcopy(o) for (p, ns, _n), o in sorted(self.objects.items(), key=_order) if p == plural
                and namespace in (None, ns)]

    def add(self, obj, plural=VMS):
        """Store ``obj`` as it is (made by another tool); only missing uid/resourceVersion/generation are filled."""
        obj = copy.deepcopy(obj)
        meta = obj['metadata']
        meta.setdefault('uid', 'uid-%d' % next(self._uids))
        meta.setdefault('generation', 1)
        if 'resourceVersion' not in meta:
            return self._store(plural, obj, 'ADDED')
        self.objects[(plural, meta.get('namespace'), meta['name'])] = obj
        return copy.deepcopy(obj)

    def edit(self, name, change, plural=VMS, namespace='ns'):
        """Another tool's write: ``change(obj)`` edits the stored object in place."""
        obj = copy.deepcopy(self.objects[(plural, namespace, name)])
        old_spec = copy.deepcopy(obj.get('spec'))
        change(obj)
        if obj.get('spec') != old_spec:
            obj['metadata']['generation'] += 1
        return self._store(plural, obj, 'MODIFIED')

    def intercept(self, method, path, handler):
        """Call ``handler(req)`` before serving ``method path``: it may change the cluster, serve the request
        itself (``serve``), raise (``dropped()``) or return a response; returning None serves the request."""
        self.intercepts.append((method, path, handler))

    def sent(self, *keys):
        """Every request as (method, path, query): PATCH is spelled with its type ('PATCH merge', 'PATCH json',
        'PATCH apply'); the query holds ``watch`` and the keys named."""
        out = []
        for req in self.requests:
            method = req.method
            if method == 'PATCH':
                method += ' ' + PATCH_TYPES.get(req.headers.get('Content-Type'), req.headers.get('Content-Type'))
            query = dict((k, v) for k, v in req.query.items() if k == 'watch' or k in keys)
            out.append((method, req.path, query))
        return out

    def writes(self, *keys):
        return [s for s in self.sent(*keys) if s[0] != 'GET']

    def bodies(self, method, path):
        return [r.body for r in self.requests if r.method == method and r.path == path]

    # --- the pool ---------------------------------------------------------------------------------------------
    def request(self, method, url, body=None, headers=None, timeout=None, **kwargs):
        assert kwargs.get('retries') is False, 'the client must own retries'
        req = Request(method, url, body, headers, timeout)
        with self._lock:
            self.requests.append(req)
        for m, path, handler in list(self.intercepts):
            if (m, path) == (method, req.path):
                answer = handler(req)
                if answer is not None:
                    return answer
        return self.serve(req)

    def serve(self, req):
        with self._lock:
            try:
                return self._serve(req)
            except Refused as refused:
                return refused.answer

    def _serve(self, req):
        parts = [unquote(p) for p in req.path.strip('/').split('/')]
        group, rest = ('', parts[2:]) if parts[0] == 'api' else (parts[1], parts[3:])
        ns = None
        if len(rest) >= 3 and rest[0] == 'namespaces':
            ns, rest = rest[1], rest[2:]
        plural, name, sub = (rest + [None, None])[:3]
        dry = req.query.get('dryRun') == 'All'
        if group == SUBRESOURCES_GROUP and plural == VMS and sub and req.method == 'PUT':
            return self._vm_action(ns, name, sub)
        if sub:
            raise Refused(404, 'NotFound', 'the server could not find the requested resource')
        if name is None and req.method == 'GET':
            return self._watch(req, group, plural, ns) if req.query.get('watch') == 'true' \
                else self._list(req, group, plural, ns)
        if name is None and req.method == 'POST':
            return self._create(plural, ns, req.body, dry)
        old = self.objects.get((plural, ns, name))
        if old is None and not (req.method == 'PATCH' and self._patch_type(req) == 'apply'):
            raise Refused(404, 'NotFound', '%s.%s "%s" not found' % (plural, group, name), name=name, kind=plural)
        if req.method == 'GET':
            return response(200, copy.deepcopy(old))
        if req.method == 'PATCH':
            return self._patch(req, plural, ns, name, old, dry)
        if req.method == 'PUT':
            if (req.body.get('metadata') or {}).get('resourceVersion') != old['metadata']['resourceVersion']:
                raise Refused(409, 'Conflict', 'Operation cannot be fulfilled on %s.%s "%s": the object has been '
                              'modified; please apply your changes to the latest version and try again'
                              % (plural, group, name), name=name, kind=plural)
            return self._write(plural, ns, name, copy.deepcopy(req.body), old, dry)
        if req.method == 'DELETE':
            return self._delete(req, group, plural, ns, name, old)
        raise Refused(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource')

    @staticmethod
    def _patch_type(req):
        return PATCH_TYPES.get(req.headers.get('Content-Type'))

    # --- reads ------------------------------------------------------------------------------------------------
    def _matcher(self, req, group, plural):
        try:
            labels = parse_label_selector(req.query.get('labelSelector'))
            fields = parse_field_selector(req.query.get('fieldSelector'),
                                          SimpleNamespace(key=(group, plural), crd_name=bool(group)))
        except SelectorError as err:
            raise Refused(400, 'BadRequest', str(err))
        return lambda obj: match_labels(labels, obj['metadata'].get('labels')) and match_fields(fields, obj)

    def _list(self, req, group, plural, ns):
        match = self._matcher(req, group, plural)
        items = [o for o in self.items(plural, ns) if match(o)]
        return response(200, {'kind': 'List', 'apiVersion': 'v1', 'metadata': {'resourceVersion': str(self.rv)},
                              'items': items})

    def _watch(self, req, group, plural, ns):
        """The events since the resourceVersion asked for; the stream ends when none is left."""
        if self.converge:
            self.reconcile(ns)
        match = self._matcher(req, group, plural)
        since = req.query.get('resourceVersion')
        if since:
            events = [(t, o) for rv, t, p, o in self.events if p == plural and rv > int(since)
                      and ns in (None, o['metadata'].get('namespace')) and match(o)]
        else:
            events = [('ADDED', o) for o in self.items(plural, ns) if match(o)]
        return response(200, raw=watch_body(events))

    # --- writes -----------------------------------------------------------------------------------------------
    def _store(self, plural, obj, etype):
        self.rv += 1
        meta = obj['metadata']
        meta['resourceVersion'] = str(self.rv)
        key = (plural, meta.get('namespace'), meta['name'])
        if etype == 'DELETED':
            self.objects.pop(key)
        else:
            self.objects[key] = obj
        self.events.append((self.rv, etype, plural, copy.deepcopy(obj)))
        return copy.deepcopy(obj)

    def _create(self, plural, ns, obj, dry):
        meta = obj.setdefault('metadata', {})
        if not meta.get('name') and meta.get('generateName'):
            meta['name'] = meta['generateName'] + 'abcde'
        meta['namespace'] = ns
        if (plural, ns, meta['name']) in self.objects:
            raise Refused(409, 'AlreadyExists', '%s "%s" already exists' % (plural, meta['name']), name=meta['name'],
                          kind=plural)
        return self._write(plural, ns, meta['name'], obj, None, dry, code=201)

    def _patch(self, req, plural, ns, name, old, dry):
        kind = self._patch_type(req)
        if kind == 'apply':
            if not req.query.get('fieldManager'):
                raise Refused(400, 'BadRequest', 'PATCH requests with apply content type must set fieldManager')
            # The simple way: the applied configuration becomes the object (no managed fields).
            return self._write(plural, ns, name, copy.deepcopy(req.body), old, dry, code=200 if old else 201)
        if kind not in ('merge', 'json'):
            raise Refused(415, 'UnsupportedMediaType', 'the body of the request was in an unknown format')
        try:
            new = merge_patch(old, req.body) if kind == 'merge' else json_patch(old, req.body)
        except PatchError as err:
            raise Refused(err.code, 'Invalid' if err.code == 422 else 'BadRequest', str(err), name=name, kind=plural)
        return self._write(plural, ns, name, new, old, dry)

    def _write(self, plural, ns, name, new, old, dry, code=200):
        """Admission (KubeVirt's webhooks), server-owned metadata, then store unless ``dry``."""
        meta = new.setdefault('metadata', {})
        meta.update(name=name, namespace=ns)
        if plural == VMS and name in self.reject:
            raise Refused(422, 'Invalid', 'VirtualMachine.kubevirt.io "%s" is invalid: %s' % (name, self.reject[name]),
                          name=name, kind=plural)
        if old is None:
            new.pop('status', None)
            meta.update(uid='uid-%d' % next(self._uids), generation=1)
        else:
            for key in ('uid', 'generation', 'creationTimestamp'):
                if key in old['metadata']:
                    meta[key] = old['metadata'][key]
            # The status subresource: a write of the object never changes its status.
            new.pop('status', None)
            if 'status' in old:
                new['status'] = copy.deepcopy(old['status'])
            if new.get('spec') != old.get('spec'):
                meta['generation'] += 1
        if plural == VMS:
            self._admit_vm(new, old, dry)
        meta.pop('resourceVersion', None)
        if dry:
            return response(code, new)
        if old is not None and new == _without_version(old):
            return response(code, copy.deepcopy(old))     # a no-op write stores nothing
        return response(code, self._store(plural, new, 'ADDED' if old is None else 'MODIFIED'))

    def _admit_vm(self, vm, old, dry):
        """kubemacpool: a MAC for each interface (the one it had before), a machine type, a transaction stamp."""
        macs = dict((i.get('name'), i.get('macAddress')) for i in _interfaces(old or {}))
        template = vm.setdefault('spec', {}).setdefault('template', {}).setdefault('spec', {})
        for index, iface in enumerate(_interfaces(vm)):
            iface.setdefault('macAddress', macs.get(iface.get('name')) or '02:00:00:00:00:%02x' % index)
        template.setdefault('domain', {}).setdefault('machine', {'type': 'q35'})
        vm['metadata'].setdefault('annotations', {})['kubemacpool.io/transaction-timestamp'] = 't%d' % self.rv
        key = (vm['metadata']['namespace'], vm['metadata']['name'])
        if old is not None and not dry and (VMIS,) + key in self.objects and \
                old['spec'].get('template') != vm['spec'].get('template'):
            self.restart_required.add(key)

    def _delete(self, req, group, plural, ns, name, old):
        options = req.body or {}
        pre = options.get('preconditions') or {}
        for field, have in (('uid', old['metadata'].get('uid')), ('resourceVersion', old['metadata']['resourceVersion'])):
            if pre.get(field) is not None and pre[field] != have:
                label = 'UID' if field == 'uid' else 'ResourceVersion'
                msg = ('Operation cannot be fulfilled on %s.%s "%s": Precondition failed: %s in precondition: %s, '
                       '%s in object meta: %s' % (plural, group, name, label, pre[field], label, have))
                raise Refused(409, 'Conflict', msg, name=name, kind=plural)
        if req.query.get('dryRun') == 'All' or 'All' in (options.get('dryRun') or []):
            return response(200, copy.deepcopy(old))
        gone = self._store(plural, copy.deepcopy(old), 'DELETED')
        if plural == VMS and (VMIS, ns, name) in self.objects:
            self._store(VMIS, copy.deepcopy(self.objects[(VMIS, ns, name)]), 'DELETED')
        return response(200, gone)

    # --- KubeVirt -----------------------------------------------------------------------------------------------
    def _vm_action(self, ns, name, action):
        """virt-api's start/stop/restart: change the run strategy and leave a state change request."""
        vm = copy.deepcopy(self.objects.get((VMS, ns, name)))
        if vm is None:
            raise Refused(404, 'NotFound', 'virtualmachines.kubevirt.io "%s" not found' % name, name=name, kind=VMS)
        spec, status = vm['spec'], vm.setdefault('status', {})
        running = (VMIS, ns, name) in self.objects
        strategy = _strategy(spec)
        field = 'running' if 'running' in spec else 'runStrategy'
        if action == 'start':
            if running:
                raise Refused(409, 'Conflict', 'VM is already running')
            if strategy == 'Halted':
                spec[field] = True if field == 'running' else 'Always'
            status['stateChangeRequests'] = [{'action': 'Start'}]
        elif action == 'stop':
            if not running and strategy != 'Always':
                raise Refused(409, 'Conflict', 'VM is not running')
            if strategy == 'Always':
                spec[field] = False if field == 'running' else 'Halted'
            status['stateChangeRequests'] = [{'action': 'Stop'}]
        elif action == 'restart':
            if not running:
                raise Refused(409, 'Conflict', 'VM is not running')
            self.restart_required.discard((ns, name))
            status['stateChangeRequests'] = [{'action': 'Stop'}, {'action': 'Start'}]
        else:
            raise Refused(404, 'NotFound', 'the server could not find the requested resource')
        if spec != self.objects[(VMS, ns, name)]['spec']:
            vm['metadata']['generation'] += 1
        self._store(VMS, vm, 'MODIFIED')
        return response(200, raw=b'')

    def reconcile(self, namespace='ns', names=None):
        """virt-controller: act on state change requests and run strategies, make VMIs, report Ready."""
        for (plural, ns, name), stored in sorted(self.objects.items(), key=_order):
            if plural != VMS or ns != namespace or (names is not None and name not in names):
                continue
            vm = copy.deepcopy(stored)
            status = vm.setdefault('status', {})
            requests = [r['action'] for r in status.pop('stateChangeRequests', [])]
            vmi = self.objects.get((VMIS, ns, name))
            strategy = _strategy(vm['spec'])
            ready = None
            if requests[:1] == ['Stop'] and vmi is not None:
                self._store(VMIS, copy.deepcopy(vmi), 'DELETED')
                vmi = None
            if strategy in RUNNING or 'Start' in requests:
                if vmi is None:
                    vmi = self._store(VMIS, {
                        'apiVersion': 'kubevirt.io/v1', 'kind': 'VirtualMachineInstance',
                        'metadata': {'name': name, 'namespace': ns, 'uid': 'vmi-%d' % next(self._uids)},
                        'status': {'phase': 'Running', 'conditions': [{'type': 'Ready', 'status': 'True'}]}}, 'ADDED')
                ready = True
            elif strategy == 'Halted' and vmi is not None:
                self._store(VMIS, copy.deepcopy(vmi), 'DELETED')
                vmi, ready = None, False
            if ready is not None:
                status['conditions'] = [{'type': 'Ready', 'status': 'True' if ready else 'False'}]
                if (ns, name) in self.restart_required:
                    status['conditions'].append({'type': 'RestartRequired', 'status': 'True'})
            if vmi is not None:
                status['created'] = True
            else:
                status.pop('created', None)
            status['observedGeneration'] = vm['metadata']['generation']
            if vm != stored:
                self._store(VMS, vm, 'MODIFIED')
