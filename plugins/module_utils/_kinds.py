# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The kinds the collection talks to, with their REST paths.

Knowing group/version/plural up front lets every task skip API discovery (``/apis`` plus one request per
group), which would otherwise cost more requests than the work itself.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from urllib.parse import quote


class Kind(object):
    """One REST resource: ``Kind('kubevirt.io', 'v1', 'virtualmachines', 'VirtualMachine')``."""

    __slots__ = ('group', 'version', 'plural', 'kind', 'namespaced')

    def __init__(self, group, version, plural, kind, namespaced=True):
        self.group = group
        self.version = version
        self.plural = plural
        self.kind = kind
        self.namespaced = namespaced

    @property
    def api_version(self):
        return '%s/%s' % (self.group, self.version) if self.group else self.version

    @property
    def builtin(self):
        """A Kubernetes type (core or a *.k8s.io group), not a custom resource: the server stores it through Go types,
        whose ``omitempty`` fields holding a zero value (false, 0, "") read back absent."""
        return '.' not in self.group or self.group.endswith('.k8s.io')

    def with_api_version(self, api_version):
        """The same kind under another ``group/version`` (the modules' ``api_version`` option)."""
        if not api_version or api_version == self.api_version:
            return self
        group, _sep, version = api_version.rpartition('/')
        return Kind(group, version, self.plural, self.kind, self.namespaced)

    def prefix(self):
        return '/apis/%s/%s' % (self.group, self.version) if self.group else '/api/%s' % self.version

    def path(self, namespace=None, name=None, subresource=None):
        """REST path of the collection (``name`` None) or of one object; ``namespace`` None means all namespaces."""
        parts = [self.prefix()]
        if self.namespaced and namespace:
            parts.append('namespaces/%s' % quote(namespace, safe=''))
        parts.append(self.plural)
        if name is not None:
            parts.append(quote(name, safe=''))
            if subresource:
                parts.append(subresource)
        return '/'.join(parts)

    def describe(self, namespace=None, name=None):
        """How messages name an object: ``VirtualMachine ns/name``."""
        if name is None:
            return '%ss' % self.kind
        return '%s %s' % (self.kind, '%s/%s' % (namespace, name) if namespace else name)

    def __repr__(self):
        return 'Kind(%s %s)' % (self.api_version, self.kind)

    def __eq__(self, other):
        return isinstance(other, Kind) and (self.group, self.version, self.plural) == (other.group, other.version, other.plural)

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash((self.group, self.version, self.plural))


KUBEVIRT_GROUP = 'kubevirt.io'
SUBRESOURCES_GROUP = 'subresources.kubevirt.io'
CDI_GROUP = 'cdi.kubevirt.io'

VM = Kind(KUBEVIRT_GROUP, 'v1', 'virtualmachines', 'VirtualMachine')
VMI = Kind(KUBEVIRT_GROUP, 'v1', 'virtualmachineinstances', 'VirtualMachineInstance')
VMIM = Kind(KUBEVIRT_GROUP, 'v1', 'virtualmachineinstancemigrations', 'VirtualMachineInstanceMigration')
VMIRS = Kind(KUBEVIRT_GROUP, 'v1', 'virtualmachineinstancereplicasets', 'VirtualMachineInstanceReplicaSet')
KUBEVIRT = Kind(KUBEVIRT_GROUP, 'v1', 'kubevirts', 'KubeVirt')
VMSNAPSHOT = Kind('snapshot.kubevirt.io', 'v1beta1', 'virtualmachinesnapshots', 'VirtualMachineSnapshot')
VMSNAPSHOTCONTENT = Kind('snapshot.kubevirt.io', 'v1beta1', 'virtualmachinesnapshotcontents', 'VirtualMachineSnapshotContent')
VMRESTORE = Kind('snapshot.kubevirt.io', 'v1beta1', 'virtualmachinerestores', 'VirtualMachineRestore')
# The aggregated virt-api: start/stop/restart on VMs, pause/unpause/migrate etc. on VMIs.
VM_SUBRESOURCE = Kind(SUBRESOURCES_GROUP, 'v1', 'virtualmachines', 'VirtualMachine')
VMI_SUBRESOURCE = Kind(SUBRESOURCES_GROUP, 'v1', 'virtualmachineinstances', 'VirtualMachineInstance')

DATAVOLUME = Kind(CDI_GROUP, 'v1beta1', 'datavolumes', 'DataVolume')
DATASOURCE = Kind(CDI_GROUP, 'v1beta1', 'datasources', 'DataSource')
CDI = Kind(CDI_GROUP, 'v1beta1', 'cdis', 'CDI', namespaced=False)

NAMESPACE = Kind('', 'v1', 'namespaces', 'Namespace', namespaced=False)
NODE = Kind('', 'v1', 'nodes', 'Node', namespaced=False)
POD = Kind('', 'v1', 'pods', 'Pod')
SERVICE = Kind('', 'v1', 'services', 'Service')
SECRET = Kind('', 'v1', 'secrets', 'Secret')
CONFIGMAP = Kind('', 'v1', 'configmaps', 'ConfigMap')
SERVICEACCOUNT = Kind('', 'v1', 'serviceaccounts', 'ServiceAccount')
DEPLOYMENT = Kind('apps', 'v1', 'deployments', 'Deployment')
DAEMONSET = Kind('apps', 'v1', 'daemonsets', 'DaemonSet')
CRD = Kind('apiextensions.k8s.io', 'v1', 'customresourcedefinitions', 'CustomResourceDefinition', namespaced=False)
# Kinds in the KubeVirt/CDI operator manifests and their leftovers on uninstall (kubevirt_install).
RBAC_GROUP = 'rbac.authorization.k8s.io'
ROLE = Kind(RBAC_GROUP, 'v1', 'roles', 'Role')
ROLEBINDING = Kind(RBAC_GROUP, 'v1', 'rolebindings', 'RoleBinding')
CLUSTERROLE = Kind(RBAC_GROUP, 'v1', 'clusterroles', 'ClusterRole', namespaced=False)
CLUSTERROLEBINDING = Kind(RBAC_GROUP, 'v1', 'clusterrolebindings', 'ClusterRoleBinding', namespaced=False)
PRIORITYCLASS = Kind('scheduling.k8s.io', 'v1', 'priorityclasses', 'PriorityClass', namespaced=False)
VALIDATINGWEBHOOKCONFIGURATION = Kind('admissionregistration.k8s.io', 'v1', 'validatingwebhookconfigurations',
                                      'ValidatingWebhookConfiguration', namespaced=False)
MUTATINGWEBHOOKCONFIGURATION = Kind('admissionregistration.k8s.io', 'v1', 'mutatingwebhookconfigurations',
                                    'MutatingWebhookConfiguration', namespaced=False)
APISERVICE = Kind('apiregistration.k8s.io', 'v1', 'apiservices', 'APIService', namespaced=False)
SELF_SUBJECT_ACCESS_REVIEW = Kind('authorization.k8s.io', 'v1', 'selfsubjectaccessreviews', 'SelfSubjectAccessReview',
                                  namespaced=False)
