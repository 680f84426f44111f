# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Kubernetes REST verbs on top of ``_client.Client``, with paths from ``_kinds`` (no discovery).

Objects are plain dicts, as the API sends them. Every method costs a known number of requests:
``get`` one, ``list`` one per page, ``watch`` one per stream, writes one (plus retries).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import math

from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import (
    ApiError,
    TransportError,
    conflict_kind,
    maybe_written,
    parse_status,
)
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._list_stream import decode_list

try:
    import urllib3
except ImportError:  # reported by _client / the module
    urllib3 = None

# A label a module puts on an object it creates with generateName, so that a create whose answer was lost
# can be found again (the server picked the name, so a read by name is impossible).
CREATE_TOKEN_LABEL = 'virtfleet.kubevirt/create-token'

PATCH_TYPES = {
    'merge': 'application/merge-patch+json',
    'json': 'application/json-patch+json',
    'strategic': 'application/strategic-merge-patch+json',
    'apply': 'application/apply-patch+yaml',
}


def join_selectors(selectors):
    """``['app=x', 'tier in (a,b)']`` or a string -> the query value, None when empty."""
    if not selectors:
        return None
    if isinstance(selectors, str):
        return selectors
    return ','.join(s.strip() for s in selectors if s and s.strip()) or None


def api_missing(err):
    """True when a 404 means the resource type is not served (CRD not installed), not a missing object."""
    if not isinstance(err, ApiError) or err.status != 404:
        return False
    status = parse_status(err.body)
    return status is None or not (status.get('details') or {}).get('name')


def _iter_lines(resp):
    """Yield complete lines of a streamed response as they arrive (watch streams are chunked JSON lines)."""
    buf = b''
    if getattr(resp, 'chunked', False) and hasattr(resp, 'read_chunked'):
        chunks = resp.read_chunked(decode_content=True)
    else:
        chunks = iter(lambda: resp.read1(65536) if hasattr(resp, 'read1') else resp.read(65536), b'')
    for chunk in chunks:
        if not chunk:
            continue
        buf += chunk
        while b'\n' in buf:
            line, buf = buf.split(b'\n', 1)
            if line.strip():
                yield line
    if buf.strip():
        yield buf


class Api(object):
    """REST verbs for known kinds; ``client`` is a ``_client.Client`` (or a test double with ``request``)."""

    def __init__(self, client, page_size=500):
        self.client = client
        self.page_size = page_size

    @property
    def request_count(self):
        return self.client.request_count

    def _req(self, method, kind, namespace=None, name=None, subresource=None, verb=None, **kwargs):
        return self.client.request(method, kind.path(namespace, name, subresource), what=kind.describe(namespace, name),
                                   namespace=namespace if kind.namespaced else None, verb=verb, **kwargs)

    def get(self, kind, name, namespace=None):
        """The object, or None when it does not exist."""
        try:
            return self._req('GET', kind, namespace, name, verb='get')
        except ApiError as err:
            if err.status == 404 and not api_missing(err):
                return None
            raise

    def list(self, kind, namespace=None, label_selectors=None, field_selectors=None, limit=None, each=None):
        """All matching objects (following ``continue``) and the list's resourceVersion, for a watch to start from.

        ``each``: a function applied to every item as soon as it is decoded, page by page while the body arrives
        (``_list_stream``); only what it returns is kept, so a caller that keeps a part of each object never holds a
        whole page of whole objects. Items given to it lack ``kind``/``apiVersion``, as in the list response.
        """
        query = {'labelSelector': join_selectors(label_selectors), 'fieldSelector': join_selectors(field_selectors),
                 'limit': limit or self.page_size}
        items = []
        resource_version = None
        # (only passed when set: test doubles of the client take the plain request signature)
        extra = {'decode': lambda chunks: decode_list(chunks, each)} if each is not None else {}
        while True:
            page = self._req('GET', kind, namespace, verb='list', query=query, **extra) or {}
            if each is not None:
                page, page_items = page
                items.extend(page_items)
            else:
                items.extend(page.get('items') or [])
            meta = page.get('metadata') or {}
            if resource_version is None:
                # The first page's version is the snapshot all pages belong to.
                resource_version = meta.get('resourceVersion')
            token = meta.get('continue')
            if not token:
                break
            query = dict(query, **{'continue': token})
        if each is None:
            # A list response omits kind/apiVersion on items; put them back so results look like single GETs.
            for item in items:
                item.setdefault('apiVersion', kind.api_version)
                item.setdefault('kind', kind.kind)
        return items, resource_version

    def create(self, kind, obj, namespace=None, dry_run=False, field_manager=None):
        """POST ``obj``; a create whose answer was lost is resolved by reading back, never sent twice blindly.

        After a dropped connection or a 5xx the object is looked up by name, or by its
        ``CREATE_TOKEN_LABEL`` when it uses ``generateName``: found means the create happened (that object is
        returned); not found means it did not, and the POST is sent again under the client's retry budget.
        A 409 AlreadyExists after such a loss is resolved the same way. Without a name or a token a lost
        create cannot be told apart from a failed one, so the error is raised with that said.
        """
        namespace = namespace or (obj.get('metadata') or {}).get('namespace')
        query = {'dryRun': 'All' if dry_run else None, 'fieldManager': field_manager}
        if dry_run:
            # A dry run stores nothing, so sending it again is harmless.
            return self._req('POST', kind, namespace, verb='create', body=obj, query=query, idempotent=True)
        attempt, lost = 0, False
        while True:
            attempt += 1
            try:
                return self._req('POST', kind, namespace, verb='create', body=obj, query=query)
            except (ApiError, TransportError) as err:
                generated = not (obj.get('metadata') or {}).get('name')
                if conflict_kind(err) == 'exists' and (lost or generated):
                    # After a lost answer this may be our own object; with generateName it may be a name clash,
                    # which a new POST (a new random suffix) cures.
                    found = self._read_back(kind, obj, namespace) if self._can_read_back(obj) else None
                    if found is not None:
                        return self._recovered(found)
                    if not generated or not self._backoff(attempt, 'name-clash'):
                        raise
                    continue
                if not maybe_written(err):
                    raise
                if not self._can_read_back(obj):
                    err.msg = ('%s The create of %s may or may not have happened and it has no name or create token to '
                               'look it up by: check the namespace before running the task again.'
                               % (err.msg, kind.describe(namespace)))
                    raise
                lost = True
                found = self._read_back(kind, obj, namespace)
                if found is not None:
                    return self._recovered(found)
                if not self._backoff(attempt, 'lost-create'):
                    raise

    def _backoff(self, attempt, reason):
        backoff = getattr(self.client, 'backoff', None)
        return backoff is not None and backoff(attempt, reason)

    @staticmethod
    def _can_read_back(obj):
        meta = obj.get('metadata') or {}
        return bool(meta.get('name') or (meta.get('labels') or {}).get(CREATE_TOKEN_LABEL))

    def _read_back(self, kind, obj, namespace):
        """The object a lost create stored, or None: by name, else by the create token (one request either way)."""
        meta = obj.get('metadata') or {}
        token = (meta.get('labels') or {}).get(CREATE_TOKEN_LABEL)
        if meta.get('name'):
            found = self.get(kind, meta['name'], namespace)
            labels = ((found or {}).get('metadata') or {}).get('labels') or {}
            if found is not None and token and labels.get(CREATE_TOKEN_LABEL) != token:
                return None  # somebody else's object with that name: not ours, the 409 stands
            return found
        items, _rv = self.list(kind, namespace, label_selectors=['%s=%s' % (CREATE_TOKEN_LABEL, token)])
        return items[0] if items else None

    def _recovered(self, obj):
        if hasattr(self.client, 'recovered'):
            self.client.recovered += 1
        return obj

    def replace(self, kind, obj, namespace=None, dry_run=False, field_manager=None):
        meta = obj.get('metadata') or {}
        query = {'dryRun': 'All' if dry_run else None, 'fieldManager': field_manager}
        return self._req('PUT', kind, namespace or meta.get('namespace'), meta['name'], verb='update', body=obj,
                         query=query)

    def patch(self, kind, name, patch, namespace=None, patch_type='merge', dry_run=False, field_manager=None,
              force=None, subresource=None):
        query = {'dryRun': 'All' if dry_run else None, 'fieldManager': field_manager,
                 'force': ('true' if force else 'false') if force is not None else None}
        # A JSON patch with "add" to a list is not idempotent; everything else re-applies to the same result.
        return self._req('PATCH', kind, namespace, name, subresource, verb='patch', body=patch, query=query,
                         content_type=PATCH_TYPES[patch_type], idempotent=patch_type != 'json')

    def apply(self, kind, obj, field_manager, namespace=None, force=False, dry_run=False):
        """Server-side apply (JSON is valid YAML, so the body is sent as JSON).

        An apply is idempotent, so the client retries it on 5xx and dropped connections. A 409 without
        ``force`` means another field manager owns some of the fields: that is a decision for the user,
        never retried (and never silently forced).
        """
        meta = obj.get('metadata') or {}
        try:
            return self.patch(kind, meta['name'], obj, namespace or meta.get('namespace'), patch_type='apply',
                              dry_run=dry_run, field_manager=field_manager, force=force)
        except ApiError as err:
            if conflict_kind(err) != 'field-manager':
                raise
            raise ApiError('%s Another field manager owns these fields and they were left as they are: change them with '
                           'the tool that manages them, or stop declaring them here.' % err.msg, err.status,
                           reason=err.reason, body=err.body, method=err.method, path=err.path)

    def delete(self, kind, name, namespace=None, propagation=None, dry_run=False, grace_period=None,
               preconditions=None):
        """The deleted (or terminating) object, or None when it was already gone.

        ``preconditions`` (``uid``/``resourceVersion``) make the server refuse (409) to delete another object.
        """
        body = {'kind': 'DeleteOptions', 'apiVersion': 'v1'}
        if propagation:
            body['propagationPolicy'] = propagation
        if grace_period is not None:
            body['gracePeriodSeconds'] = grace_period
        preconditions = dict((k, v) for k, v in (preconditions or {}).items() if v is not None)
        if preconditions:
            body['preconditions'] = preconditions
        if dry_run:
            body['dryRun'] = ['All']
        try:
            # dryRun goes in the query too: not every server reads it from the DeleteOptions body.
            return self._req('DELETE', kind, namespace, name, verb='delete', body=body,
                             query={'dryRun': 'All'} if dry_run else None)
        except ApiError as err:
            if err.status == 404 and not api_missing(err):
                return None
            raise

    def subresource(self, kind, name, sub, namespace=None, method='PUT', body=None, idempotent=False):
        """Call ``.../name/<sub>`` (e.g. KubeVirt start/stop); actions are not retried blindly."""
        return self._req(method, kind, namespace, name, sub, verb=sub, body=body, idempotent=idempotent)

    def watch(self, kind, namespace=None, label_selectors=None, field_selectors=None, resource_version=None,
              timeout=60.0):
        """Yield ``(type, object)`` events of one watch stream until the server ends it or ``timeout`` passes.

        A stream that the server ends early just stops the generator; the caller decides whether to
        re-watch. An ``ERROR`` event (410 Gone when ``resource_version`` is too old) raises ApiError.
        """
        timeout = max(1.0, float(timeout))
        query = {'watch': 'true', 'allowWatchBookmarks': 'true', 'resourceVersion': resource_version,
                 'labelSelector': join_selectors(label_selectors), 'fieldSelector': join_selectors(field_selectors),
                 'timeoutSeconds': int(math.ceil(timeout))}
        connect = self.client.timeout[0] if hasattr(self.client, 'timeout') else 10.0
        resp = self._req('GET', kind, namespace, verb='watch', query=query, stream=True,
                         timeout=(connect, timeout + 2.0))
        errors = (urllib3.exceptions.HTTPError, OSError) if urllib3 is not None else (OSError,)
        try:
            for line in _iter_lines(resp):
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                etype, obj = event.get('type'), event.get('object') or {}
                if etype == 'ERROR':
                    code = obj.get('code') or 500
                    raise ApiError('The watch on %s failed (%s): %s' % (kind.describe(namespace), code, obj.get('message')),
                                   code, reason=obj.get('reason'), body=json.dumps(obj), method='GET',
                                   path=kind.path(namespace))
                yield etype, obj
        except errors:
            # Read timeout or dropped stream: the caller re-watches from the last resourceVersion if time is left.
            return
        finally:
            # An unfinished stream must not go back to the pool with unread bytes on the socket.
            resp.close()
            resp.release_conn()
