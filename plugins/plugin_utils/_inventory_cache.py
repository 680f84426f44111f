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


def cache_file(get_option, key):
    """Path of the entry for the file-based cache plugins (jsonfile, yaml, pickle), else None."""
    directory = get_option("cache_connection")
    if not directory:
        return None
    return os.path.join(os.path.expanduser(directory), (get_option("cache_prefix") or "") + key)


def write(cache, key, fingerprint, clusters, get_option):
    """Store the entry now (instead of after parse) so the file can be made private right away.

    ansible-core's file cache plugins chmod their files to 0644 after writing; inventory data
    (labels, annotations, addresses) is not for every local user, so narrow it to 0600.
    """
    cache[key] = {"version": FORMAT_VERSION, "fingerprint": fingerprint, "clusters": clusters}
    old_umask = os.umask(0o077)
    try:
        cache.update_cache_if_changed()
    finally:
        os.umask(old_umask)
    path = cache_file(get_option, key)
    if path and os.path.isfile(path):
        os.chmod(path, FILE_MODE)
