"""Shared pytest fixtures: one Kubernetes API emulator per test session.

Set VIRTFLEET_TEST_KUBECONFIG to run the integration tests against a real cluster instead; tests that
need the emulator's hooks (request log, fault injection) are skipped then.
"""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
COLLECTIONS = REPO / ".build" / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", str(COLLECTIONS))
