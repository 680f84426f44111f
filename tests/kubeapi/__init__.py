"""A Kubernetes API emulator for the virtfleet.kubevirt tests.

The interface is in tests/kubeapi/README.md and the module docstring of harness.py.
Run `python -m tests.kubeapi --help` for the command line.
"""
