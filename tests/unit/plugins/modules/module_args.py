"""patch_module_args for every ansible-core we test: 2.19 ships it, older releases get this equivalent."""
import contextlib
import json

from ansible.module_utils import basic

try:
    from ansible.module_utils.testing import patch_module_args  # noqa: F401  pylint: disable=unused-import
except ImportError:  # ansible-core < 2.19

    @contextlib.contextmanager
    def patch_module_args(args):
        saved = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = json.dumps({'ANSIBLE_MODULE_ARGS': args}).encode()
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved


class Exit(Exception):
    """Raised in place of exit_json."""


class Fail(Exception):
    """Raised in place of fail_json."""
