"""Per-token authorisation: the admin token may do anything; other tokens are limited to namespaces/verbs.

A token spec (from --rbac FILE, or PUT /_emulator/tokens) is
{"token": str, "user": str, "namespaces": [..], "verbs": [..]|null, "cluster_wide_read": bool,
 "cluster_wide": bool, "resources": [..]|null, "groups": [..]} ("cluster_wide": the verbs on the resources in every
namespace, as a ClusterRoleBinding gives them). Client certificates map CN to a user with the same rules when a
spec with that "user" exists; a certificate for an unknown user gets only discovery.
"""
import threading

READ_VERBS = {"get", "list", "watch"}


class Authorizer:
    def __init__(self, admin_token):
        self._lock = threading.Lock()
        self.admin_token = admin_token
        self._tokens = {}
        self._users = {}

    def add(self, spec):
        spec = dict(spec)
        spec.setdefault("user", spec.get("token"))
        spec.setdefault("namespaces", [])
        spec.setdefault("verbs", None)
        spec.setdefault("cluster_wide_read", False)
        spec.setdefault("resources", None)
        with self._lock:
            if spec.get("token"):
                self._tokens[spec["token"]] = spec
            self._users[spec["user"]] = spec
        return spec

    def remove(self, token):
        with self._lock:
            spec = self._tokens.pop(token, None)
            if spec:
                self._users.pop(spec["user"], None)

    def user_for_token(self, token):
        if token == self.admin_token:
            return "admin"
        spec = self._tokens.get(token)
        return spec["user"] if spec else None

    def allowed(self, user, verb, namespace, resource, subresource=None):
        if user in ("admin", "system:admin"):
            return True
        spec = self._users.get(user)
        if spec is None:
            return False
        resources = spec.get("resources")
        if resources is not None and resource not in resources and \
                (resource + "/" + (subresource or "")) not in resources:
            return False
        verbs = spec.get("verbs")
        verb_ok = verbs is None or verb in verbs
        if spec.get("cluster_wide") or (namespace and namespace in spec.get("namespaces", [])):
            return verb_ok
        if spec.get("cluster_wide_read") and verb in READ_VERBS:
            return True
        # "cluster_read_resources": [plural, ...] reads only those kinds in every namespace (e.g. a token that may
        # list namespaces but not VirtualMachineInstances cluster-wide, as with a namespaced RoleBinding).
        if verb in READ_VERBS and resource in (spec.get("cluster_read_resources") or ()):
            return True
        return False
