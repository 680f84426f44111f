# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Argument specs shared by the modules, each paired 1:1 with a doc fragment of the same name.

``AUTH_ARG_SPEC`` <-> ``virtfleet.kubevirt._auth``, ``WAIT_ARG_SPEC`` <-> ``virtfleet.kubevirt._wait``.
A unit test checks that the specs and the fragments list the same options, types and aliases.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import re

from ansible.module_utils.basic import env_fallback

from ansible_collections.virtfleet.kubevirt.plugins.module_utils._auth_env import AUTH_ENV


def _env(name):
    return (env_fallback, list(AUTH_ENV[name]))


AUTH_ARG_SPEC = {
    'kubeconfig': {'type': 'raw', 'fallback': _env('kubeconfig')},
    'context': {'type': 'str', 'fallback': _env('context')},
    'host': {'type': 'str', 'fallback': _env('host')},
    'api_key': {'type': 'str', 'no_log': True, 'fallback': _env('api_key')},
    'username': {'type': 'str', 'fallback': _env('username')},
    'password': {'type': 'str', 'no_log': True, 'fallback': _env('password')},
    'client_cert': {'type': 'path', 'aliases': ['cert_file'], 'fallback': _env('client_cert')},
    'client_key': {'type': 'path', 'aliases': ['key_file'], 'no_log': False, 'fallback': _env('client_key')},
    'ca_cert': {'type': 'path', 'aliases': ['ssl_ca_cert'], 'fallback': _env('ca_cert')},
    'validate_certs': {'type': 'bool', 'aliases': ['verify_ssl'], 'fallback': _env('validate_certs')},
    'proxy': {'type': 'str', 'fallback': _env('proxy')},
    'no_proxy': {'type': 'str', 'fallback': _env('no_proxy')},
    'proxy_headers': {
        'type': 'dict',
        'options': {
            'proxy_basic_auth': {'type': 'str', 'no_log': True},
            'basic_auth': {'type': 'str', 'no_log': True},
            'user_agent': {'type': 'str'},
        },
    },
    'persist_config': {'type': 'bool', 'fallback': _env('persist_config')},
    'impersonate_user': {'type': 'str', 'fallback': _env('impersonate_user')},
    'impersonate_groups': {'type': 'list', 'elements': 'str', 'fallback': _env('impersonate_groups')},
}

WAIT_ARG_SPEC = {
    'wait': {'type': 'bool'},
    'wait_sleep': {'type': 'int', 'default': 5},
    'wait_timeout': {'type': 'int', 'default': 120},
}

# Options of the read-only modules (kubevirt.core's INFO_ARG_SPEC plus hidden_fields).
INFO_ARG_SPEC = {
    'api_version': {'type': 'str', 'default': 'kubevirt.io/v1'},
    'name': {'type': 'str'},
    'namespace': {'type': 'str'},
    'label_selectors': {'type': 'list', 'elements': 'str', 'default': []},
    'field_selectors': {'type': 'list', 'elements': 'str', 'default': []},
    'hidden_fields': {'type': 'list', 'elements': 'str',
                      'default': ['metadata.annotations[kubemacpool.io/transaction-timestamp]', 'metadata.managedFields']},
}


def argument_spec(*specs, **extra):
    """Merge deep copies of shared specs with module-specific options (keyword arguments)."""
    merged = {}
    for spec in specs:
        merged.update(copy.deepcopy(spec))
    merged.update(copy.deepcopy(extra))
    return merged


INSECURE_WARNING = ('TLS certificate verification is off (validate_certs=false, K8S_AUTH_VERIFY_SSL or '
                    'insecure-skip-tls-verify in the kubeconfig), so the API server is not authenticated and the '
                    'credentials sent to it can be stolen: give ca_cert (or certificate-authority-data in the kubeconfig) '
                    'instead.')


def insecure(client):
    """True when the client does not verify the API server's certificate (on an https URL)."""
    configuration = getattr(client, 'configuration', None)  # test doubles may have none
    return configuration is not None and not configuration.verify_ssl and str(configuration.host).startswith('https')


_KUBECONFIG_SECRET_KEYS = ('token', 'password', 'client-key-data', 'id-token', 'refresh-token', 'access-token',
                           'client-secret', 'value')


def _collect_kubeconfig_secrets(node, out, parent=None):
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str) and key in _KUBECONFIG_SECRET_KEYS and (key != 'value' or parent == 'env'):
                out.add(value)
            else:
                _collect_kubeconfig_secrets(value, out, key)
    elif isinstance(node, list):
        for value in node:
            _collect_kubeconfig_secrets(value, out, parent)


def connection_secrets(params):
    """Secret strings inside connection options that are not no_log themselves: the credentials of a kubeconfig
    given as a dictionary (tokens, client key data, auth-provider and exec env values) and the password in a proxy
    URL. Modules add them to no_log_values so that no result, invocation or message shows them."""
    out = set()
    kubeconfig = params.get('kubeconfig')
    if isinstance(kubeconfig, dict) and isinstance(kubeconfig.get('users'), list):
        for user in kubeconfig['users']:
            _collect_kubeconfig_secrets(user, out)
    proxy = params.get('proxy')
    if isinstance(proxy, str) and '@' in proxy:
        match = re.match(r'^[a-z0-9+.-]+://([^/@]*)@', proxy, re.IGNORECASE)
        userinfo = match.group(1) if match else ''
        if ':' in userinfo:
            out.add(userinfo.split(':', 1)[1])
    return set(v for v in out if v)


def auth_options(params):
    """The connection options out of module params (env fallbacks already applied by AnsibleModule)."""
    return dict((name, params.get(name)) for name in AUTH_ARG_SPEC)


# ---------------------------------------------------------------------------------------------------
# Validators: every value that would otherwise reach the API server (and come back as a 422, or not at all)
# is checked before the first request. Each raises InvalidOption with one sentence naming the option and the fix.


class InvalidOption(ValueError):
    """A bad option value; the message is the whole report (one sentence, option named, fix given)."""


_DNS_LABEL = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')
_DNS_SUBDOMAIN = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')
_GENERATE_PREFIX = re.compile(r'^[a-z0-9][-a-z0-9.]*$')
_QUANTITY = re.compile(r'^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$')
_LABEL_NAME = re.compile(r'^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$')
_LABEL_KEY_TEXT = 'an optional DNS prefix and "/", then at most 63 letters, digits, "-", "_" or "." starting and ending alphanumeric'
_IMAGE = re.compile(r'^[a-z0-9]+([._-]+[a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*'
                    r'(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@[a-z0-9]+([+._-][a-z0-9]+)*:[A-Fa-f0-9]{32,})?$')
_REGISTRY_HOST = re.compile(r'^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]+)?$')
_API_VERSION = re.compile(r'^kubevirt\.io/v[0-9]+((alpha|beta)[0-9]+)?$')


def _suggest_name(value):
    text = re.sub(r'[^a-z0-9-]+', '-', str(value).lower()).strip('-')
    return text[:63].rstrip('-') or 'vm-1'


def _check_dns(value, option, what, pattern, limit, rule):
    text = str(value)
    if len(text) > limit or not pattern.match(text):
        raise InvalidOption('%s "%s" is not a valid Kubernetes %s: use %s, starting and ending with a letter or digit, '
                            'such as "%s".' % (option, value, what, rule, _suggest_name(value)))
    return text


def check_dns_label(value, option, what='name'):
    """Namespaces, Service-like names: RFC 1123 label (at most 63 characters)."""
    return _check_dns(value, option, what, _DNS_LABEL, 63, 'at most 63 lowercase letters, digits and "-"')


def check_dns_subdomain(value, option, what='name'):
    """Object names (VirtualMachine, Secret...): RFC 1123 subdomain (at most 253 characters)."""
    return _check_dns(value, option, what, _DNS_SUBDOMAIN, 253, 'lowercase letters, digits, "-" and "."')


def check_generate_name(value, option='generate_name'):
    text = str(value)
    if len(text) > 58 or not _GENERATE_PREFIX.match(text):
        raise InvalidOption('%s "%s" is not a valid name prefix: use at most 58 lowercase letters, digits, "-" and ".", '
                            'starting with a letter or digit, such as "%s-".' % (option, value, _suggest_name(value)))
    return text


def check_quantity(value, option, example='2Gi', positive=True):
    """A Kubernetes resource quantity such as 2Gi, 512Mi or 1.5G."""
    text = str(value).strip() if value is not None else ''
    if not _QUANTITY.match(text):
        # "2 GB", "2gb", "512 MiB" -> 2Gi, 2Gi, 512Mi: the spelling users meant, when it is that close.
        compact = re.sub(r'\s+', '', str(value))
        compact = re.sub(r'([KMGTPEkmgtpe])i?[Bb]$', lambda m: m.group(1).upper() + 'i', compact)
        hint = compact if _QUANTITY.match(compact) else example
        raise InvalidOption('%s "%s" is not a Kubernetes quantity: write a number and a unit without a space, such as %s '
                            '(units Ki, Mi, Gi, Ti or k, M, G, T).' % (option, value, hint))
    if positive and (text.startswith('-') or not re.search(r'[1-9]', re.split(r'[eE]', text)[0])):
        raise InvalidOption('%s "%s" must be more than zero, such as %s.' % (option, value, example))
    return text


def check_image(value, option, allow_scheme=False):
    """A container image reference (registry/repository[:tag][@digest]), e.g. for a containerDisk."""
    text = str(value)
    bare = text
    if allow_scheme and '://' in text:
        scheme, _sep, bare = text.partition('://')
        if scheme not in ('docker', 'oci-archive'):
            raise InvalidOption('%s "%s" has the scheme %s://: use docker:// (or none) before the image reference.'
                                % (option, value, scheme))
    head, slash, rest = bare.partition('/')
    # The registry host part may hold upper case letters; the repository path may not.
    if slash and ('.' in head or ':' in head or head == 'localhost') and _REGISTRY_HOST.match(head):
        bare = 'registry.invalid/' + rest
    if not _IMAGE.match(bare):
        what = 'contains white space' if re.search(r'\s', text) else 'is not an image reference'
        raise InvalidOption('%s "%s" %s: write it as registry/repository:tag in lower case without spaces, such as '
                            'quay.io/containerdisks/fedora:41.' % (option, value, what))
    return text


def check_registry(value, option):
    """An image registry prefix (host[:port][/path]) that images are moved to."""
    text = str(value).rstrip('/')
    head, _slash, rest = text.partition('/')
    if not _REGISTRY_HOST.match(head) or (rest and not _IMAGE.match('r/' + rest)):
        raise InvalidOption('%s "%s" is not a registry prefix: write it as host[:port][/path] without spaces or scheme, '
                            'such as registry.example.com:5000/kubevirt.' % (option, value))
    return text


def check_label_key(key, option):
    text = str(key)
    prefix, slash, name = text.rpartition('/')
    if (slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix))) or \
            not name or len(name) > 63 or not _LABEL_NAME.match(name):
        raise InvalidOption('%s key "%s" is not a valid label key: use %s, such as app or example.com/tier.'
                            % (option, key, _LABEL_KEY_TEXT))
    return text


def check_label_value(key, value, option):
    text = str(value)
    if text and (len(text) > 63 or not _LABEL_NAME.match(text)):
        raise InvalidOption('%s value "%s" of %s is not a valid label value: use at most 63 letters, digits, "-", "_" or '
                            '".", starting and ending alphanumeric, such as %s.'
                            % (option, value, key, _suggest_name(value)))
    return text


def check_labels(labels, option='labels'):
    for key, value in (labels or {}).items():
        check_label_key(key, option)
        if isinstance(value, (dict, list)):
            raise InvalidOption('%s value of %s must be a string, not a %s: quote it or flatten it into more labels.'
                                % (option, key, 'dictionary' if isinstance(value, dict) else 'list'))
        if value is not None and not isinstance(value, bool):
            check_label_value(key, value, option)


_SELECTOR_SET = re.compile(r'^\s*(!?)\s*([^\s=!(),]+)\s*(?:(notin|in)\s*\(([^()]*)\)|(==|=|!=)\s*([^\s=!(),]*))?\s*$')


def _split_requirements(text):
    """Split on commas outside parentheses; an unbalanced parenthesis is an error (None)."""
    parts, depth, current = [], 0, ''
    for char in text:
        if char == '(':
            depth += 1
        elif char == ')':
            depth -= 1
            if depth < 0:
                return None
        if char == ',' and depth == 0:
            parts.append(current)
            current = ''
        else:
            current += char
    if depth != 0:
        return None
    parts.append(current)
    return parts


def check_label_selector(selector, option):
    """One Kubernetes label selector string (``app=web,tier in (a,b),!legacy``)."""
    text = str(selector)
    hint = ('write requirements like app=web, app!=web, tier in (a,b), tier notin (c), env or !env, '
            'separated by commas')
    parts = _split_requirements(text)
    if parts is None:
        raise InvalidOption('%s "%s" has unbalanced parentheses: %s.' % (option, selector, hint))
    for part in parts:
        match = _SELECTOR_SET.match(part)
        if not part.strip() or not match:
            raise InvalidOption('%s "%s" is not a label selector (at "%s"): %s.' % (option, selector, part.strip(), hint))
        negated, key, set_op, values, op, value = match.groups()
        if negated and (set_op or op):
            raise InvalidOption('%s "%s": "!" only goes before a bare key (!%s): %s.' % (option, selector, key, hint))
        try:
            check_label_key(key, 'the')
            for item in ([v.strip() for v in values.split(',')] if set_op else [value] if op else []):
                check_label_value(key, item, 'the')
        except InvalidOption as exc:
            raise InvalidOption('%s "%s" is not a label selector: %s' % (option, selector, exc))
        if set_op and not values.strip():
            raise InvalidOption('%s "%s": %s needs at least one value in its parentheses.' % (option, selector, set_op))
    return text


def check_field_selector(selector, option):
    """One field selector string (``status.phase=Running,metadata.name!=x``)."""
    text = str(selector)
    for part in text.split(','):
        match = re.match(r'^\s*([A-Za-z0-9_.\-\[\]/]+)\s*(==|=|!=)\s*([^=!]*?)\s*$', part)
        if not match:
            raise InvalidOption('%s "%s" is not a field selector (at "%s"): write field=value, field==value or field!=value '
                                'separated by commas, such as status.phase=Running.' % (option, selector, part.strip()))
    return text


def check_selectors(values, option, checker):
    for value in values or []:
        checker(value, option)


def check_seconds(value, option, minimum=0):
    if value is not None and value < minimum:
        raise InvalidOption('%s must be %d or more seconds, got %s.' % (option, minimum, value))
    return value


def check_api_version(value, option='api_version'):
    if value is not None and not _API_VERSION.match(str(value)):
        raise InvalidOption('%s "%s" is not a KubeVirt API version: use kubevirt.io/v1.' % (option, value))
    return value


def check_info_params(params):
    """kubevirt_vm_info / kubevirt_vmi_info options that the API server would reject or misread."""
    check_api_version(params.get('api_version'))
    if params.get('name'):
        check_dns_subdomain(params['name'], 'name')
    if params.get('namespace'):
        check_dns_label(params['namespace'], 'namespace', 'namespace name')
    check_selectors(params.get('label_selectors'), 'label_selectors', check_label_selector)
    check_selectors(params.get('field_selectors'), 'field_selectors', check_field_selector)
    check_seconds(params.get('wait_timeout'), 'wait_timeout')
    check_seconds(params.get('wait_sleep'), 'wait_sleep')
