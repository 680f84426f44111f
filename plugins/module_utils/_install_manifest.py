# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Operator manifests of KubeVirt and CDI: where they come from, what is rewritten, which REST paths they need.

A release manifest (``kubevirt-operator.yaml``, ``cdi-operator.yaml``) is a multi-document YAML file with the
namespace, the operator's CRD and RBAC and the operator Deployment. Sources: a version (resolved to the
official release asset URL), an explicit URL, or a local file for air-gapped sites. For mirrors the
operator image (and every ``*_IMAGE`` environment variable that points at the same registry) is rewritten
to the mirror, and image pull secrets are added to the operator pod.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import os
import re

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ApiError, KubeVirtError

try:
    import yaml
    YAML_IMPORT_ERROR = None
except ImportError as _exc:  # PyYAML ships with ansible-core; reported by the module if missing anyway
    yaml = None
    YAML_IMPORT_ERROR = _exc

VERSION_RE = re.compile(r'^v?(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.-]+)?$')


class Component(object):
    """What differs between KubeVirt and CDI as far as installing goes: the installer reads these, never the name.

    ``versions``: the CR status fields of the (target, observed) version. ``name_option``: the module option that
    names the CR (None: fixed name). ``shared_options``: top-level options a component's own ones default to.
    ``options_prefix``: how the module's options for this component are spelled (``cdi.version``).
    ``workloads``: (kind, label) whose existence blocks an uninstall with BlockUninstallIfWorkloadsExist;
    ``ignored_owner``: workloads owned by this kind do not count. ``tracks_generation``: ready also needs
    observedGeneration to have caught up. ``cluster_checks``: nodes, emulation and the Kubernetes version are
    checked before install (the VM runtime needs them; CDI does not).
    """

    def __init__(self, key, title, asset_url, operator, version_env, cr_kind, cr_name, namespace, versions,
                 name_option=None, shared_options=(), workloads=(), ignored_owner=None, tracks_generation=False,
                 cluster_checks=False, options_prefix=''):
        self.key = key
        self.prefix = options_prefix
        self.title = title
        self.asset_url = asset_url
        self.operator = operator
        self.version_env = version_env
        self.cr_kind = cr_kind
        self.cr_name = cr_name
        self.namespace = namespace
        self.versions = versions
        self.name_option = name_option
        self.shared_options = shared_options
        self.workloads = workloads
        self.ignored_owner = ignored_owner
        self.tracks_generation = tracks_generation
        self.cluster_checks = cluster_checks

    def option(self, name):
        """The module option that sets ``name`` for this component (``cdi.`` options for CDI)."""
        return self.prefix + name

    def name_in(self, params):
        """The CR's name: from its option when the user may choose it."""
        return (params.get(self.name_option) if self.name_option else None) or self.cr_name

    def cr_namespace(self, namespace):
        return namespace if self.cr_kind.namespaced else None

    def setting(self, source, params, name):
        """``name`` from the component's options, else (for shared options) from the top level."""
        value = source.get(name)
        if not value and name in self.shared_options:
            value = params.get(name)
        return value


KUBEVIRT = Component('kubevirt', 'KubeVirt',
                     'https://github.com/kubevirt/kubevirt/releases/download/{version}/kubevirt-operator.yaml',
                     'virt-operator', 'KUBEVIRT_VERSION', _kinds.KUBEVIRT, 'kubevirt', 'kubevirt',
                     versions=('targetKubeVirtVersion', 'observedKubeVirtVersion'), name_option='name',
                     workloads=((_kinds.VMI, 'VirtualMachineInstances'), (_kinds.VM, 'VirtualMachines'),
                                (_kinds.VMIRS, 'VirtualMachineInstanceReplicaSets')),
                     tracks_generation=True, cluster_checks=True)
CDI = Component('cdi', 'CDI',
                'https://github.com/kubevirt/containerized-data-importer/releases/download/{version}/cdi-operator.yaml',
                'cdi-operator', 'OPERATOR_VERSION', _kinds.CDI, 'cdi', 'cdi',
                versions=('targetVersion', 'observedVersion'), shared_options=('image_registry', 'image_pull_secrets'),
                workloads=((_kinds.DATAVOLUME, 'DataVolumes'),), ignored_owner='DataImportCron', options_prefix='cdi.')

# Kinds found in the operator manifests; anything else costs one discovery request for its group/version.
KNOWN_KINDS = dict(((k.api_version, k.kind), k) for k in (
    _kinds.NAMESPACE, _kinds.CRD, _kinds.SERVICEACCOUNT, _kinds.DEPLOYMENT, _kinds.DAEMONSET, _kinds.SECRET,
    _kinds.CONFIGMAP, _kinds.SERVICE, _kinds.ROLE, _kinds.ROLEBINDING, _kinds.CLUSTERROLE, _kinds.CLUSTERROLEBINDING,
    _kinds.PRIORITYCLASS, _kinds.VALIDATINGWEBHOOKCONFIGURATION, _kinds.MUTATINGWEBHOOKCONFIGURATION,
    _kinds.APISERVICE, _kinds.KUBEVIRT, _kinds.CDI))


def normalize_version(value, option):
    """``1.9.0`` or ``v1.9.0`` -> ``v1.9.0``; anything else is a user error naming ``option``."""
    if value is None:
        return None
    text = str(value).strip()
    if not VERSION_RE.match(text):
        raise KubeVirtError('%s must be a release version such as v1.9.0, got "%s".' % (option, value))
    return text if text.startswith('v') else 'v' + text


def release_url(component, version):
    return component.asset_url.format(version=version)


def fetch_url(url, validate_certs=True, timeout=60):
    """Download a manifest (through Ansible's ``open_url``, so proxies and CA settings behave as elsewhere)."""
    from ansible.module_utils.urls import open_url  # pylint: disable=import-outside-toplevel
    from urllib.error import HTTPError, URLError  # pylint: disable=import-outside-toplevel
    try:
        resp = open_url(url, validate_certs=validate_certs, timeout=timeout, follow_redirects='all')
        return resp.read().decode('utf-8')
    except HTTPError as exc:
        raise KubeVirtError('Downloading %s failed (HTTP %s): check the version, or give manifest_url or manifest_path '
                            '(air-gapped).' % (url, exc.code))
    except (URLError, OSError, ValueError) as exc:
        raise KubeVirtError('Downloading %s failed (%s): the host running the task needs access to it, or download the '
                            'file elsewhere and give manifest_path.' % (url, getattr(exc, 'reason', exc)))


def read_source(component, version=None, url=None, path=None, validate_certs=True, fetch=fetch_url, prefix=''):
    """(text, source description) from exactly one of path, url, version."""
    opt = (prefix + '%s') if prefix else '%s'
    if path:
        path = os.path.expanduser(path)
        if not os.path.isfile(path):
            raise KubeVirtError('%s %s does not exist on the host running the task: give the path of the downloaded '
                                '%s release manifest.' % (opt % 'manifest_path', path, component.title))
        with open(path, 'rb') as handle:
            return handle.read().decode('utf-8'), path
    if not url:
        if not version:
            raise KubeVirtError('No source for the %s operator manifest: set %s, %s or %s.'
                                % (component.title, opt % 'version', opt % 'manifest_url', opt % 'manifest_path'))
        url = release_url(component, version)
    return fetch(url, validate_certs=validate_certs), url


def parse(text, source):
    """The objects of a multi-document YAML text, in order; empty documents dropped."""
    if yaml is None:
        raise KubeVirtError('PyYAML is required to read operator manifests (%s).' % YAML_IMPORT_ERROR)
    try:
        docs = [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as exc:
        raise KubeVirtError('%s is not valid YAML (%s).' % (source, str(exc).splitlines()[0]))
    objects = []
    for doc in docs:
        items = doc.get('items') if isinstance(doc, dict) and str(doc.get('kind', '')).endswith('List') else [doc]
        for obj in items or []:
            if not isinstance(obj, dict) or not obj.get('kind') or not obj.get('apiVersion') or \
                    not (obj.get('metadata') or {}).get('name'):
                raise KubeVirtError('%s holds a document that is not a Kubernetes object (apiVersion, kind and '
                                    'metadata.name are required): %.120r' % (source, obj))
            objects.append(obj)
    if not objects:
        raise KubeVirtError('%s holds no Kubernetes objects.' % source)
    return objects


def split_image(image):
    """``quay.io/kubevirt/virt-operator:v1.9.0`` -> (``quay.io/kubevirt``, ``virt-operator``, ``:v1.9.0``)."""
    ref, at, digest = image.partition('@')
    suffix = at + digest
    head, slash, last = ref.rpartition('/')
    if ':' in last:
        last, tag = last.split(':', 1)
        suffix = ':' + tag + suffix
    return head if slash else '', last, suffix


def image_tag(image):
    suffix = split_image(image)[2]
    return suffix[1:] if suffix.startswith(':') else None


def rewrite_image(image, registry):
    _old, name, suffix = split_image(image)
    return '%s/%s%s' % (registry.rstrip('/'), name, suffix)


def _containers(obj):
    spec = ((obj.get('spec') or {}).get('template') or {}).get('spec') or {}
    return spec, list(spec.get('containers') or []) + list(spec.get('initContainers') or [])


def operator_deployment(component, objects):
    for obj in objects:
        if obj.get('kind') == 'Deployment' and obj['metadata']['name'] == component.operator:
            return obj
    kinds = sorted(set(str(obj.get('kind')) for obj in objects))
    asset = release_url(component, '<version>').rsplit('/', 1)[-1]
    raise KubeVirtError('The %s manifest has no Deployment named %s (it holds %s): point %s or %s at the %s operator '
                        'manifest (%s), or give %s only.'
                        % (component.title, component.operator, ', '.join(kinds[:5]), component.option('manifest_path'),
                           component.option('manifest_url'), component.title, asset, component.option('version')))


def operator_image(component, objects):
    _spec, containers = _containers(operator_deployment(component, objects))
    for container in containers:
        if container.get('name') == component.operator:
            return container.get('image') or ''
    return containers[0].get('image') or '' if containers else ''


def manifest_version(component, objects):
    """The version the operator deploys: its version env var, else the operator image tag."""
    _spec, containers = _containers(operator_deployment(component, objects))
    for container in containers:
        for env in container.get('env') or []:
            if env.get('name') == component.version_env and env.get('value'):
                return env['value']
    tag = image_tag(operator_image(component, objects))
    if not tag:
        raise KubeVirtError('Cannot tell the %s version of the manifest: the %s image has no tag and no %s is set.'
                            % (component.title, component.operator, component.version_env))
    return tag


def customize(component, objects, image_registry=None, pull_secrets=None):
    """Copy of the objects with the operator image moved to ``image_registry`` and pull secrets added."""
    out = copy.deepcopy(objects)
    deployment = operator_deployment(component, out)
    pod_spec, containers = _containers(deployment)
    if image_registry:
        original = split_image(operator_image(component, out))[0]
        for container in containers:
            if container.get('image'):
                container['image'] = rewrite_image(container['image'], image_registry)
            for env in container.get('env') or []:
                value = env.get('value')
                # *_IMAGE variables name operand images; only those from the operator's registry move.
                if env.get('name', '').endswith('_IMAGE') and isinstance(value, str) and value and \
                        split_image(value)[0] == original:
                    env['value'] = rewrite_image(value, image_registry)
    if pull_secrets:
        existing = [s.get('name') for s in pod_spec.get('imagePullSecrets') or []]
        pod_spec['imagePullSecrets'] = [{'name': n} for n in existing + [s for s in pull_secrets if s not in existing]]
    return out


def object_namespace(obj, kind):
    return (obj.get('metadata') or {}).get('namespace') if kind.namespaced else None


def describe(obj):
    meta = obj.get('metadata') or {}
    ns = meta.get('namespace')
    return '%s %s' % (obj.get('kind'), '%s/%s' % (ns, meta.get('name')) if ns else meta.get('name'))


class KindResolver(object):
    """apiVersion + kind -> ``_kinds.Kind``: the table above, else one discovery request per group/version."""

    def __init__(self, api):
        self.api = api
        self._discovered = {}

    def __call__(self, api_version, kind):
        known = KNOWN_KINDS.get((api_version, kind))
        if known is not None:
            return known
        if api_version not in self._discovered:
            group, _sep, version = api_version.rpartition('/')
            path = '/apis/%s/%s' % (group, version) if group else '/api/%s' % version
            try:
                doc = self.api.client.request('GET', path, what='API group %s' % api_version, verb='get') or {}
            except ApiError as err:
                if err.status != 404:
                    raise
                doc = {}
            self._discovered[api_version] = doc.get('resources') or []
        for res in self._discovered[api_version]:
            if res.get('kind') == kind and '/' not in res.get('name', ''):
                group, _sep, version = api_version.rpartition('/')
                return _kinds.Kind(group, version, res['name'], kind, namespaced=bool(res.get('namespaced')))
        raise KubeVirtError('The API server does not serve %s %s, which the operator manifest contains: check the '
                            'Kubernetes version against what this KubeVirt/CDI release supports.' % (api_version, kind))
