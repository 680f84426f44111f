# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Connection options of every module; paired 1:1 with AUTH_ARG_SPEC in plugins/module_utils/_args.py.
    # Names, aliases and environment variables are those of kubernetes.core / kubevirt.core.
    DOCUMENTATION = r'''
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file, or several paths separated by C(:) (C(;) on Windows), or the kubeconfig content
        as a dictionary.
      - When neither this, O(context) nor O(host) with credentials is given, the service account of the pod is
        used when running inside Kubernetes, then E(KUBECONFIG) or C(~/.kube/config).
      - Can also be specified via E(K8S_AUTH_KUBECONFIG) environment variable.
    type: raw
  context:
    description:
      - The name of a context found in the kubeconfig. Defaults to its C(current-context).
      - Can also be specified via E(K8S_AUTH_CONTEXT) environment variable.
    type: str
  host:
    description:
      - URL of the Kubernetes API server, for example C(https://api.example.com:6443).
      - Overrides the server of the kubeconfig context.
      - Can also be specified via E(K8S_AUTH_HOST) environment variable.
    type: str
  api_key:
    description:
      - Bearer token used to authenticate with the API.
      - Can also be specified via E(K8S_AUTH_API_KEY) environment variable.
    type: str
  username:
    description:
      - Username for HTTP basic authentication with the API. Most clusters do not accept basic authentication;
        prefer O(api_key) or client certificates.
      - Can also be specified via E(K8S_AUTH_USERNAME) environment variable.
    type: str
  password:
    description:
      - Password for HTTP basic authentication, see O(username).
      - Can also be specified via E(K8S_AUTH_PASSWORD) environment variable.
    type: str
  client_cert:
    description:
      - Path to a client certificate (PEM) used to authenticate with the API.
      - Can also be specified via E(K8S_AUTH_CERT_FILE) or E(K8S_AUTH_CLIENT_CERT) environment variable.
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Path to the private key (PEM) of O(client_cert).
      - Can also be specified via E(K8S_AUTH_KEY_FILE) or E(K8S_AUTH_CLIENT_KEY) environment variable.
    type: path
    aliases: [key_file]
  ca_cert:
    description:
      - Path to a CA certificate (PEM) that signed the API server's certificate. Give the full chain.
      - Can also be specified via E(K8S_AUTH_SSL_CA_CERT) or E(K8S_AUTH_CA_CERT) environment variable.
    type: path
    aliases: [ssl_ca_cert]
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate.
      - When not set, the kubeconfig cluster's C(insecure-skip-tls-verify) decides; certificates are verified
        otherwise.
      - When verification ends up off, the module prints a warning; give O(ca_cert) instead.
      - Can also be specified via E(K8S_AUTH_VERIFY_SSL) or E(K8S_AUTH_VALIDATE_CERTS) environment variable.
    type: bool
    aliases: [verify_ssl]
  proxy:
    description:
      - URL of an HTTP(S) proxy (or C(socks5://) with PySocks installed) for the connection to the API server.
      - The usual E(HTTPS_PROXY) environment variable is not used; set this option or the kubeconfig C(proxy-url).
      - Can also be specified via E(K8S_AUTH_PROXY) environment variable.
    type: str
  no_proxy:
    description:
      - Comma-separated hosts, domains, IP addresses or CIDRs reached without O(proxy),
        for example C(localhost,.local,10.0.0.0/8).
      - Can also be specified via E(K8S_AUTH_NO_PROXY) environment variable.
    type: str
  proxy_headers:
    description:
      - Headers sent to the proxy.
    type: dict
    suboptions:
      proxy_basic_auth:
        description:
          - Colon-separated username:password for proxy basic authentication.
          - Can also be specified via E(K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH) environment variable.
        type: str
      basic_auth:
        description:
          - Colon-separated username:password for a basic authentication header.
          - Can also be specified via E(K8S_AUTH_PROXY_HEADERS_BASIC_AUTH) environment variable.
        type: str
      user_agent:
        description:
          - User agent string, for example C(foo/1.0).
          - Can also be specified via E(K8S_AUTH_PROXY_HEADERS_USER_AGENT) environment variable.
        type: str
  persist_config:
    description:
      - Whether to write refreshed tokens (OIDC, exec plugins) back to the kubeconfig file.
      - Can also be specified via E(K8S_AUTH_PERSIST_CONFIG) environment variable.
    type: bool
  impersonate_user:
    description:
      - Username to impersonate for the operation.
      - Can also be specified via E(K8S_AUTH_IMPERSONATE_USER) environment variable.
    type: str
  impersonate_groups:
    description:
      - Groups to impersonate for the operation.
      - Can also be specified via E(K8S_AUTH_IMPERSONATE_GROUPS) environment variable, for example C(Group1,Group2).
    type: list
    elements: str
requirements:
  - kubernetes >= 28.1.0
  - urllib3 >= 1.26.0
  - PyYAML >= 6.0
notes:
  - Connection options can be set once for all modules of this collection with
    C(module_defaults) and the C(group/virtfleet.kubevirt.kubevirt) action group.
  - API errors are reported as one sentence that names the cause and the option to change
    (for example 401 -> O(api_key), TLS failure -> O(ca_cert) / O(validate_certs)).
'''

    # Plugin variant (inventory): the same options, read through get_option with environment variables.
    PLUGIN = r'''
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file (or C(:)-separated paths), or the kubeconfig content as a dictionary.
      - When neither this, O(context) nor O(host) with credentials is given, the pod's service account is used when
        running inside Kubernetes, then E(KUBECONFIG) or C(~/.kube/config).
    type: raw
    env:
      - name: K8S_AUTH_KUBECONFIG
  context:
    description:
      - The name of a context found in the kubeconfig. Defaults to its C(current-context).
    type: str
    env:
      - name: K8S_AUTH_CONTEXT
  host:
    description:
      - URL of the Kubernetes API server.
    type: str
    env:
      - name: K8S_AUTH_HOST
  api_key:
    description:
      - Bearer token used to authenticate with the API.
    type: str
    env:
      - name: K8S_AUTH_API_KEY
  username:
    description:
      - Username for HTTP basic authentication with the API.
    type: str
    env:
      - name: K8S_AUTH_USERNAME
  password:
    description:
      - Password for HTTP basic authentication.
    type: str
    env:
      - name: K8S_AUTH_PASSWORD
  client_cert:
    description:
      - Path to a client certificate (PEM) used to authenticate with the API.
    type: path
    aliases: [cert_file]
    env:
      - name: K8S_AUTH_CERT_FILE
      - name: K8S_AUTH_CLIENT_CERT
  client_key:
    description:
      - Path to the private key (PEM) of O(client_cert).
    type: path
    aliases: [key_file]
    env:
      - name: K8S_AUTH_KEY_FILE
      - name: K8S_AUTH_CLIENT_KEY
  ca_cert:
    description:
      - Path to a CA certificate (PEM) that signed the API server's certificate.
    type: path
    aliases: [ssl_ca_cert]
    env:
      - name: K8S_AUTH_SSL_CA_CERT
      - name: K8S_AUTH_CA_CERT
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate. When not set, the kubeconfig decides; certificates are
        verified otherwise.
      - When verification ends up off, the plugin prints a warning; give O(ca_cert) instead.
    type: bool
    aliases: [verify_ssl]
    env:
      - name: K8S_AUTH_VERIFY_SSL
      - name: K8S_AUTH_VALIDATE_CERTS
  proxy:
    description:
      - URL of an HTTP(S) proxy for the connection to the API server.
    type: str
    env:
      - name: K8S_AUTH_PROXY
  no_proxy:
    description:
      - Comma-separated hosts, domains, IP addresses or CIDRs reached without O(proxy).
    type: str
    env:
      - name: K8S_AUTH_NO_PROXY
  proxy_headers:
    description:
      - Headers sent to the proxy.
    type: dict
    suboptions:
      proxy_basic_auth:
        description:
          - C(user:password) for the proxy's basic authentication header.
          - Can also be set with E(K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH).
        type: str
      basic_auth:
        description:
          - C(user:password) for a basic authentication header.
          - Can also be set with E(K8S_AUTH_PROXY_HEADERS_BASIC_AUTH).
        type: str
      user_agent:
        description:
          - The user agent, such as C(foo/1.0).
          - Can also be set with E(K8S_AUTH_PROXY_HEADERS_USER_AGENT).
        type: str
  persist_config:
    description:
      - Whether to write refreshed tokens back to the kubeconfig file.
    type: bool
    env:
      - name: K8S_AUTH_PERSIST_CONFIG
  impersonate_user:
    description:
      - Username to impersonate for the operation.
    type: str
    env:
      - name: K8S_AUTH_IMPERSONATE_USER
  impersonate_groups:
    description:
      - Groups to impersonate for the operation (comma-separated in the environment variable).
    type: list
    elements: str
    env:
      - name: K8S_AUTH_IMPERSONATE_GROUPS
requirements:
  - kubernetes >= 28.1.0
  - urllib3 >= 1.26.0
  - PyYAML >= 6.0
  - websocket-client >= 1.5.2 (for the inventory's address strategy api_tunnel)
'''
