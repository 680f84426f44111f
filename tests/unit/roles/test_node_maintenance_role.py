"""Role node_maintenance and playbook maintain_nodes: argument spec vs defaults, every variable declared, the
playbook's roll keywords (the roll itself runs against the emulator in tests/integration/test_day2_maintenance.py)."""
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
ROLE = REPO / 'roles' / 'node_maintenance'
PLAYBOOK = REPO / 'playbooks' / 'maintain_nodes.yml'
# Facts and registered results of the role, not variables a user sets.
INTERNAL = {'node_maintenance_report'}


def load(path):
    return yaml.safe_load((ROLE / path).read_text())


def test_defaults_equal_argument_spec_defaults():
    spec = load('meta/argument_specs.yml')['argument_specs']['main']['options']
    defaults = load('defaults/main.yml')
    assert set(defaults) == set(spec)
    for name, option in spec.items():
        assert name.startswith('node_maintenance_')
        assert defaults[name] == option.get('default'), name


def test_every_variable_used_is_declared_and_every_declared_one_used():
    spec = set(load('meta/argument_specs.yml')['argument_specs']['main']['options'])
    text = (ROLE / 'tasks' / 'main.yml').read_text()
    used = set(re.findall(r'\b(node_maintenance_[a-z_]+)\b', text)) - INTERNAL
    assert used == spec, (used ^ spec)
    readme = (ROLE / 'README.md').read_text()
    assert all('`%s`' % name in readme for name in spec)


def test_the_playbook_rolls_one_node_at_a_time_and_stops_at_the_first_failure():
    plays = yaml.safe_load(PLAYBOOK.read_text())
    roll = plays[0]
    assert roll['serial'] == "{{ maintain_nodes_max_unavailable | default(1) }}"
    assert roll['hosts'] == "{{ maintain_nodes_hosts | default('kvm_nodes') }}"
    assert roll['any_errors_fatal'] is True and roll['max_fail_percentage'] == 0
    assert [r['role'] for r in roll['roles']] == ['virtfleet.kubevirt.node_maintenance']
    # Runs unattended from AWX: nothing prompts.
    text = PLAYBOOK.read_text() + (ROLE / 'tasks' / 'main.yml').read_text()
    assert 'vars_prompt' not in text and 'ansible.builtin.pause' not in text


def test_api_tasks_run_on_the_controller():
    tasks = load('tasks/main.yml')
    block = next(t for t in tasks if 'block' in t)
    api = [t for t in block['block'] if any(k.startswith('virtfleet.kubevirt.kubevirt_') for k in t)]
    assert len(api) == 4
    assert all(t.get('delegate_to') == 'localhost' for t in api)
