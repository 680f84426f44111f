"""The release artifact: `ansible-galaxy collection build` ships what users need and nothing used for development.

galaxy.yml's build_ignore decides what ships; ansible-galaxy matches each pattern with fnmatch against every relative
path. The test copies the tracked files to a temporary directory, plants the leftovers a working checkout collects
(virtualenvs, ansible-lint's .ansible/, caches, ansible-test output, a stray tarball) at the top and deeper, builds it
with the ansible-galaxy of the running virtualenv (each ansible-core line the tests run on) and reads the tarball.
"""
import fnmatch
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# The top-level entries of the tarball: what users need, plus the two files ansible-galaxy writes.
SHIPPED = {'plugins', 'roles', 'playbooks', 'meta', 'docs', 'changelogs', 'README.md', 'LICENSE', 'COPYING',
           'requirements.txt', 'bindep.txt', 'MANIFEST.json', 'FILES.json'}
# Shipped as well when the checkout has them (release notes, the execution-environment definition).
SHIPPED_IF_PRESENT = ('CHANGELOG.rst', 'execution-environment*')
# Development-only files inside the shipped trees.
NOT_SHIPPED_INSIDE = {'changelogs/.plugin-cache.yaml'}

# Leftovers of development, at the top and nested: none of them may reach the tarball.
PLANTED = (
    '.venv-planted/lib/python3.11/site-packages/planted.py',
    'bench/.venv-x/lib/x.py',
    'roles/kvm_host/.venv/lib/python3.11/site-packages/planted.py',
    'plugins/modules/.venv-tool/bin/planted.py',
    '.ansible/collections/ansible_collections/planted/x/galaxy.yml',
    'roles/kubevirt/.ansible/roles/planted/tasks/main.yml',
    'playbooks/.ansible/tmp/planted.yml',
    'plugins/module_utils/__pycache__/_api.cpython-311.pyc',
    'plugins/modules/planted.pyc',
    '.pytest_cache/v/cache/lastfailed',
    'roles/kvm_host/.pytest_cache/README.md',
    '.mypy_cache/3.11/planted.json',
    'plugins/.mypy_cache/planted.json',
    '.tox/py311/planted.py',
    'tests/output/bot/planted.json',
    'roles/kvm_host/tests/output/planted.json',
    'virtfleet-kubevirt-0.0.9.tar.gz',
    'docs/planted-0.1.tar.gz',
    'bench/results/planted.json',
)
# A path with one of these components (or ending so) is a leftover wherever it sits.
LEFTOVER_DIRS = ('.venv*', '.ansible', '__pycache__', '.pytest_cache', '.mypy_cache', '.tox', 'output')
LEFTOVER_SUFFIXES = ('.pyc', '.tar.gz')


def tracked_files():
    """The checkout's tracked files that exist in the working tree (relative paths)."""
    if not (REPO / '.git').exists():
        pytest.skip('not a git checkout: the artifact is built from the tracked files')
    out = subprocess.run(['git', '-C', str(REPO), 'ls-files', '-z'], check=True, capture_output=True).stdout
    return [name for name in out.decode().split('\0') if name and (REPO / name).is_file()]


@pytest.fixture(scope='module')
def artifact(tmp_path_factory):
    """(tracked files, {tarball member name: is a regular file}) of a build of the tracked files plus the leftovers."""
    tracked = tracked_files()
    src = tmp_path_factory.mktemp('artifact') / 'src'
    for name in tracked:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, src / name, follow_symlinks=False)
    for name in PLANTED:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text('planted by tests/unit/test_artifact.py\n')
    out = src.parent / 'dist'
    galaxy = Path(sys.executable).parent / 'ansible-galaxy'
    proc = subprocess.run([str(galaxy), 'collection', 'build', '--output-path', str(out), str(src)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tarballs = list(out.glob('virtfleet-kubevirt-*.tar.gz'))
    assert len(tarballs) == 1, tarballs
    with tarfile.open(tarballs[0]) as tar:
        members = {member.name: member.isfile() for member in tar.getmembers()}
    return tracked, members


def test_top_level_entries_are_what_users_need(artifact):
    tracked, members = artifact
    optional = {name.split('/')[0] for name in tracked
                if any(fnmatch.fnmatch(name.split('/')[0], pattern) for pattern in SHIPPED_IF_PRESENT)}
    assert {name.split('/')[0] for name in members} == SHIPPED | optional


def test_every_tracked_file_of_the_shipped_trees_ships_and_nothing_else(artifact):
    tracked, members = artifact
    tops = {name.split('/')[0] for name in members}
    expected = {name for name in tracked if name.split('/')[0] in tops} - NOT_SHIPPED_INSIDE
    files = {name for name, is_file in members.items() if is_file}
    assert files - {'MANIFEST.json', 'FILES.json'} == expected
    assert {'plugins/modules/kubevirt_vm.py', 'plugins/inventory/kubevirt.py', 'roles/kvm_host/tasks/main.yml',
            'playbooks/site.yml', 'meta/runtime.yml', 'changelogs/changelog.yaml'} <= files


def test_no_leftover_at_any_depth(artifact):
    members = artifact[1]
    planted = [name for name in PLANTED if name in members]
    assert not planted
    leftovers = [name for name in members
                 if name.endswith(LEFTOVER_SUFFIXES)
                 or any(fnmatch.fnmatch(part, pattern) for part in name.split('/')[:-1] for pattern in LEFTOVER_DIRS)]
    assert not leftovers
