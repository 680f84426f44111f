# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""``hidden_fields`` paths (kubernetes.core syntax): ``metadata.managedFields``,
``metadata.annotations[kubemacpool.io/transaction-timestamp]``, ``spec.template.spec.volumes[0].name``."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import re

_TOKEN = re.compile(r'\[([^\]]*)\]|([^.\[\]]+)')


def parse_path(path):
    """``a.b[c.d][0]`` -> ``['a', 'b', 'c.d', '0']``; brackets keep dots inside a key."""
    tokens = []
    for match in _TOKEN.finditer(path):
        tokens.append(match.group(1) if match.group(1) is not None else match.group(2))
    return tokens


def _remove(node, tokens):
    """Remove the path; a dict or list that the removal leaves empty goes too, as in kubernetes.core (hiding the
    only annotation leaves no ``annotations: {}`` behind)."""
    if not tokens:
        return
    head, rest = tokens[0], tokens[1:]
    if isinstance(node, dict):
        key = head
        if key not in node:
            return
    elif isinstance(node, list) and head.isdigit() and int(head) < len(node):
        key = int(head)
    else:
        return
    if rest:
        _remove(node[key], rest)
        if node[key] in ({}, []):
            del node[key]
    else:
        del node[key]


def hide_fields(obj, paths):
    """A copy of ``obj`` without the given paths (missing paths are ignored)."""
    if not paths:
        return obj
    result = copy.deepcopy(obj)
    for path in paths:
        _remove(result, parse_path(path))
    return result
