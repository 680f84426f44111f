"""Kubernetes `Status` error bodies, shaped like k8s.io/apimachinery/pkg/api/errors."""


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self):
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            body["details"] = self.details
        if not self.reason:
            del body["reason"]
        return body


def _details(rtype, name=None, kind=None):
    d = {}
    if name:
        d["name"] = name
    if rtype is not None and rtype.group:
        d["group"] = rtype.group
    d["kind"] = kind or (rtype.plural if rtype is not None else "")
    return d


def not_found(rtype, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (rtype.qualified, name), _details(rtype, name))


def namespace_not_found(name):
    return ApiError(404, "NotFound", 'namespaces "%s" not found' % name, {"name": name, "kind": "namespaces"})


def already_exists(rtype, name):
    return ApiError(409, "AlreadyExists", '%s "%s" already exists' % (rtype.qualified, name),
                    _details(rtype, name))


def conflict(rtype, name, why="the object has been modified; please apply your changes to the latest version "
                              "and try again"):
    return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": %s' % (rtype.qualified, name, why),
                    _details(rtype, name))


def invalid(rtype, name, causes):
    """422 with causes [{reason, field, message}] (message without the field prefix)."""
    parts = ["%s: %s" % (c["field"], c["message"]) if c.get("field") else c["message"] for c in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    details = _details(rtype, name, kind=rtype.kind)
    details["causes"] = [dict(c) for c in causes]
    return ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (rtype.group_kind, name or "", summary), details)


def bad_request(message, causes=None):
    return ApiError(400, "BadRequest", message, {"causes": causes} if causes else None)


def forbidden(rtype, name, user, verb, namespace, subresource=None):
    resource = rtype.plural + ("/" + subresource if subresource else "")
    where = 'in the namespace "%s"' % namespace if namespace else "at the cluster scope"
    prefix = '%s "%s"' % (rtype.qualified, name) if name else rtype.qualified
    msg = '%s is forbidden: User "%s" cannot %s resource "%s" in API group "%s" %s' % (
        prefix, user, verb, resource, rtype.group, where)
    return ApiError(403, "Forbidden", msg, _details(rtype, name))


def unauthorized():
    return ApiError(401, "Unauthorized", "Unauthorized")


def method_not_allowed(message="the server does not allow this method on the requested resource"):
    return ApiError(405, "MethodNotAllowed", message, {})


def not_found_path(message="the server could not find the requested resource"):
    return ApiError(404, "NotFound", message, {})


def unsupported_media(content_type, accepted):
    return ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted "
                    "media types include: " + ", ".join(accepted), None)


def gone(message="too old resource version"):
    return ApiError(410, "Expired", message)


def too_many_requests():
    return ApiError(429, "TooManyRequests", "the server has received too many requests and has asked us to try "
                    "again later", {"retryAfterSeconds": 1}, headers={"Retry-After": "1"})


def internal_error(message="an error on the server (\"injected fault\") has prevented the request from "
                           "succeeding"):
    return ApiError(500, "InternalError", message, {"causes": [{"message": "injected fault"}]})
