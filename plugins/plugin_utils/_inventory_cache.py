# -*- coding: utf-8 -*-
# Copyright: virtfleet.kubevirt contributors
# Apache License 2.0 (see LICENSE or http://www.apache.org/licenses/LICENSE-2.0)
"""Inventory cache entries: versioned, keyed by what the data depends on, written owner-only.

The entry holds the trimmed API objects of every cluster (see _inventory_fetch) and a fingerprint
of the options the fetch depended on (never credentials), so editing namespaces or selectors in
the source file is not answered from a stale cache.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

FORMAT_VERSION = 1
FILE_MODE = 0o600


def read(cache, key, fingerprint):
    """The cached clusters list, or None on a miss, an expired entry or a changed configuration."""
    try:
        entry = cache[key]
    except KeyError:
        return None
    if not isinstance(entry, dict) or entry.get("version") != FORMAT_VERSION or entry.get("fingerprint") != fingerprint:
        return None
    clusters = entry.get("clusters")
    return clusters if isinstance(clusters, list) else None


def cache_files(get_option, key):
    """Files holding the entry for the file-based cache plugins (jsonfile, yaml, pickle): named
    <cache_prefix>...<key> in cache_connection (ansible-core 2.19 inserts a schema marker between)."""
    directory = get_option("cache_connection")
    if not directory:
        return []
    directory = os.path.expanduser(directory)
    prefix = get_option("cache_prefix") or ""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return [os.path.join(directory, n) for n in names if n.startswith(prefix) and n.endswith(key)]


def write(cache, key, fingerprint, clusters, get_option):
    """Store the entry now (instead of after parse) so the file can be made private right away.

    ansible-core's file cache plugins chmod their files to 0644 after writing; inventory data
    (labels, annotations, addresses) is not for every local user, so narrow it to 0600. The umask
    covers the cache directory when the plugin creates it.
    """
    cache[key] = {"version": FORMAT_VERSION, "fingerprint": fingerprint, "clusters": clusters}
    old_umask = os.umask(0o077)
    try:
        cache.update_cache_if_changed()
    finally:
        os.umask(old_umask)
    for path in cache_files(get_option, key):
        if os.path.isfile(path):
            os.chmod(path, FILE_MODE)
