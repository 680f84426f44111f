"""Counts that tests report in pytest's terminal summary (fault suite, bad-input catalogue, ...).

A test calls ``record("fault suite", "faults injected: 37, retries: 41")``; tests/conftest.py prints every
recorded line under its section after the run, so the numbers appear in `make test` output and CI logs.
"""
from collections import OrderedDict

_SECTIONS = OrderedDict()


def record(section, line):
    _SECTIONS.setdefault(section, []).append(str(line))


def sections():
    return list(_SECTIONS.items())
