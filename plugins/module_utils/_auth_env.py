# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Environment variables of the connection options, kubernetes.core's names (AWX credentials set them).

Shared by the argument specs (``_args``, ``env_fallback``) and the client (``_client``, which reads them for
the inventory plugin and for options left unset), so neither imports the other.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Option name -> environment variables, first one set wins. The names are those kubernetes.core reads
# (K8S_AUTH_<option> and K8S_AUTH_<kubernetes client attribute>), so AWX/AAP credential types keep working.
AUTH_ENV = {
    'kubeconfig': ('K8S_AUTH_KUBECONFIG',),
    'context': ('K8S_AUTH_CONTEXT',),
    'host': ('K8S_AUTH_HOST',),
    'api_key': ('K8S_AUTH_API_KEY',),
    'username': ('K8S_AUTH_USERNAME',),
    'password': ('K8S_AUTH_PASSWORD',),
    'validate_certs': ('K8S_AUTH_VALIDATE_CERTS', 'K8S_AUTH_VERIFY_SSL'),
    'ca_cert': ('K8S_AUTH_CA_CERT', 'K8S_AUTH_SSL_CA_CERT'),
    'client_cert': ('K8S_AUTH_CLIENT_CERT', 'K8S_AUTH_CERT_FILE'),
    'client_key': ('K8S_AUTH_CLIENT_KEY', 'K8S_AUTH_KEY_FILE'),
    'proxy': ('K8S_AUTH_PROXY',),
    'no_proxy': ('K8S_AUTH_NO_PROXY',),
    'persist_config': ('K8S_AUTH_PERSIST_CONFIG',),
    'impersonate_user': ('K8S_AUTH_IMPERSONATE_USER',),
    'impersonate_groups': ('K8S_AUTH_IMPERSONATE_GROUPS',),
}
PROXY_HEADERS_ENV = {
    'proxy_basic_auth': 'K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH',
    'basic_auth': 'K8S_AUTH_PROXY_HEADERS_BASIC_AUTH',
    'user_agent': 'K8S_AUTH_PROXY_HEADERS_USER_AGENT',
}
