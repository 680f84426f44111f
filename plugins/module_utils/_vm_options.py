# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options that describe one VM of ``kubevirt_vm``: one table, everything else derived from it.

A new per-VM option is one row of ``VM_OPTIONS`` plus its documentation in ``plugins/modules/kubevirt_vm.py``
(at the top level and under ``vms``); ``tests/unit/plugins/test_option_parity.py`` fails until both agree.
From the table come the argument spec (top level and ``vms`` items), ``PER_VM_OPTIONS``,
``CONVENIENCE_OPTIONS``, ``DEFINITION_EXCLUSIVE``, ``MERGED_DICT_OPTIONS``, the mutually exclusive rules and
``defines()``. Pure: no I/O, no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
from collections import namedtuple

RUN_STRATEGIES = ["Always", "Halted", "Manual", "RerunOnFailure", "Once"]
EVICTION_STRATEGIES = ["None", "LiveMigrate", "LiveMigrateIfPossible", "External"]
STATES = ["present", "absent", "started", "stopped", "restarted", "restart", "paused"]

# How an option's value makes a task "define" the VM (create it, or write more than its run state):
# TRUTHY: any true value; NOT_NONE: any given value, false too (running=false halts the VM);
# GIVEN: anything but None and an empty list or dictionary (the convenience options, as uses_convenience()).
TRUTHY, NOT_NONE, GIVEN = "truthy", "not_none", "given"
_DEFINES_TESTS = {
    TRUTHY: bool,
    NOT_NONE: lambda value: value is not None,
    GIVEN: lambda value: value not in (None, [], {}),
}

VMOption = namedtuple("VMOption", [
    "name",        # option name, at the top level (shared default) and in a `vms` item (override)
    "spec",        # its argument spec entry (type, elements, choices, aliases, suboptions and their rules)
    "item_only",   # only in `vms` items (`state`: the top-level one is a task option with a default)
    "defines",     # None, or how a value counts as "this task defines the VM" (TRUTHY, NOT_NONE, GIVEN)
    "excludes_definition",  # mutually exclusive with `definition`, which replaces it
    "convenience",  # builds the VM's template from parts (beyond kubevirt.core's raw `spec`)
    "merged",      # a dict whose `vms` item keys merge over the shared default instead of replacing it
    "body",        # declares the VM's body (its template, instance type, data volumes), not only labels or run state
])


def _option(name, spec, item_only=False, defines=None, excludes_definition=False, convenience=False, merged=False,
            body=False):
    return VMOption(name, spec, item_only, defines, excludes_definition, convenience, merged, body)


def _convenience(name, spec, merged=False):
    return _option(name, spec, defines=GIVEN, excludes_definition=True, convenience=True, merged=merged, body=True)


def _boot_disk_spec():
    sources = ["container_image", "url", "registry", "clone_from", "pvc"]
    return dict(
        type="dict",
        options=dict(
            container_image=dict(type="str"),
            url=dict(type="str"),
            registry=dict(type="str"),
            clone_from=dict(type="dict", options=dict(
                name=dict(type="str", required=True),
                namespace=dict(type="str"),
            )),
            pvc=dict(type="str"),
            size=dict(type="str"),
            storage_class=dict(type="str"),
            access_modes=dict(type="list", elements="str"),
            bus=dict(type="str"),
        ),
        mutually_exclusive=[sources],
        required_one_of=[sources],
        required_by={"url": "size", "registry": "size"},
    )


# Nothing here has a default: None means "not given", which both the `vms` merge and the run-strategy rule
# ("never touch it on update unless given") rely on. The order is the order of the argument spec.
VM_OPTIONS = (
    _option("name", dict(type="str")),
    _option("generate_name", dict(type="str"), excludes_definition=True),
    _option("namespace", dict(type="str")),
    _option("state", dict(type="str", choices=STATES), item_only=True),
    _option("definition", dict(type="dict", aliases=["resource_definition"]), defines=TRUTHY, body=True),
    _option("labels", dict(type="dict"), defines=TRUTHY, excludes_definition=True, merged=True),
    _option("annotations", dict(type="dict"), defines=TRUTHY, excludes_definition=True, merged=True),
    _option("instancetype", dict(type="dict"), defines=TRUTHY, excludes_definition=True, body=True),
    _option("preference", dict(type="dict"), defines=TRUTHY, excludes_definition=True, body=True),
    _option("data_volume_templates", dict(type="list", elements="dict"), defines=TRUTHY, excludes_definition=True,
            body=True),
    _option("spec", dict(type="dict"), defines=TRUTHY, excludes_definition=True, body=True),
    _option("running", dict(type="bool"), defines=NOT_NONE, excludes_definition=True),
    _option("run_strategy", dict(type="str", choices=RUN_STRATEGIES), defines=TRUTHY, excludes_definition=True),
    _convenience("cpu", dict(type="dict", options=dict(
        cores=dict(type="int"),
        sockets=dict(type="int"),
        threads=dict(type="int"),
        model=dict(type="str"),
    ))),
    _convenience("memory", dict(type="str")),
    _convenience("boot_disk", _boot_disk_spec()),
    _convenience("cloud_init", dict(type="dict", options=dict(
        user_data=dict(type="str", no_log=True),
        network_data=dict(type="str"),
        user=dict(type="str"),
        ssh_authorized_keys=dict(type="list", elements="str", no_log=False),
        password=dict(type="str", no_log=True),
    ), mutually_exclusive=[["user_data", "ssh_authorized_keys"], ["user_data", "password"], ["user_data", "user"]])),
    _convenience("networks", dict(type="list", elements="dict", options=dict(
        name=dict(type="str", required=True),
        multus=dict(type="str"),
        binding=dict(type="str", choices=["masquerade", "bridge"]),
        mac_address=dict(type="str"),
        model=dict(type="str"),
    ))),
    _convenience("node_selector", dict(type="dict"), merged=True),
    _convenience("tolerations", dict(type="list", elements="dict")),
    _convenience("eviction_strategy", dict(type="str", choices=EVICTION_STRATEGIES)),
)

# Every option that may be given per VM (top level = shared default, `vms` item = override).
PER_VM_OPTIONS = tuple(o.name for o in VM_OPTIONS)
# Options that build the VM's template from parts (beyond kubevirt.core's raw `spec`).
CONVENIENCE_OPTIONS = tuple(o.name for o in VM_OPTIONS if o.convenience)
# Options that describe the VM object; `definition` replaces all of them. Ordered as Ansible reports conflicts
# with `definition`: the VM's own fields, then generate_name, then the convenience options.
DEFINITION_EXCLUSIVE = tuple(o.name for o in sorted((o for o in VM_OPTIONS if o.excludes_definition),
                                                    key=lambda o: (o.convenience, not o.defines)))
# Dict options where a `vms` item's keys are merged over the shared default instead of replacing it.
MERGED_DICT_OPTIONS = tuple(o.name for o in VM_OPTIONS if o.merged)
# Options whose value makes a task define the VM (see defines()).
DEFINING_OPTIONS = tuple(o.name for o in VM_OPTIONS if o.defines)

# Pairs Ansible refuses together, in the order it reports them. DEFINITION_PAIRS stands for
# [definition, option] for every option with excludes_definition.
DEFINITION_PAIRS = "definition pairs"
EXCLUSIVE_RULES = (("name", "generate_name"), ("running", "run_strategy"), DEFINITION_PAIRS,
                   ("instancetype", "cpu"), ("instancetype", "memory"))


def vm_option_spec(for_item=False):
    """Argument spec of the options that describe one VM: the top level's, or a `vms` item's (which adds `state`)."""
    spec = dict((o.name, copy.deepcopy(o.spec)) for o in VM_OPTIONS if not o.item_only)
    if for_item:
        spec.update((o.name, copy.deepcopy(o.spec)) for o in VM_OPTIONS if o.item_only)
    return spec


def vm_option_rules():
    """mutually_exclusive pairs shared by the top level and `vms` items (Ansible names both options)."""
    exclusive = []
    for rule in EXCLUSIVE_RULES:
        if rule == DEFINITION_PAIRS:
            exclusive += [["definition", opt] for opt in DEFINITION_EXCLUSIVE]
        else:
            exclusive.append(list(rule))
    return exclusive


def uses_convenience(p):
    """True when one VM's options (a dict, missing keys mean not given) use a convenience option."""
    return any(_DEFINES_TESTS[GIVEN](p.get(opt)) for opt in CONVENIENCE_OPTIONS)


def declares_body(opts):
    """True when one VM's options declare its body (template, instance type, data volumes), not only its labels,
    annotations or run state: what a full-ownership apply may take over."""
    return any(_DEFINES_TESTS[o.defines](opts.get(o.name)) for o in VM_OPTIONS if o.body)


def defines(opts):
    """True when one VM's options (after the `vms` merge) define the VM: enough to create it, and more than a bare
    lifecycle request (name, namespace and state only), which must not rewrite an existing VM."""
    return any(_DEFINES_TESTS[o.defines](opts.get(o.name)) for o in VM_OPTIONS if o.defines)
