"""A Kubernetes API emulator for the virtfleet.kubevirt tests.

See /work/notes/emulator-contract.md (copied in the module docstring of harness.py) for the interface.
Run `python -m tests.kubeapi --help` for the command line.
"""
