# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Paired with WAIT_ARG_SPEC in plugins/module_utils/_args.py.
    DOCUMENTATION = r'''
options:
  wait:
    description:
      - Whether to wait until the objects reach the state the module describes.
      - All matched objects are waited for together, through one watch on the API server, under a single
        deadline of O(wait_timeout) seconds.
    type: bool
  wait_sleep:
    description:
      - Accepted for compatibility with C(kubevirt.core). Waits use a watch and react to each change at once,
        so this only bounds the pause (at most half a second) before re-opening a watch that the API server
        closed early.
    type: int
    default: 5
  wait_timeout:
    description:
      - How many seconds the whole wait may take, for all objects together.
      - On timeout the task fails and names every object that is not there yet, with its current state.
    type: int
    default: 120
'''
