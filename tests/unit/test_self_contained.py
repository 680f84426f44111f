"""The repository is self-contained: no tracked file points outside it.

The emulator's and the tests' data live in the repository (tests/fixtures); documentation and comments point into the
repository only. The one reference outside is the real-server tier's control-plane binaries, found through
VIRTFLEET_REALK8S whose documented default is the realk8s folder beside the checkout (REALK8S_DEFAULT): that path may
appear only in a file that also names VIRTFLEET_REALK8S. The outside names are assembled from parts here, so this file
itself names no path outside the repository. The scan reads every text file ``git ls-files`` lists (and new files not yet added, unless
ignored) and names each offending file:line.
"""
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
THIS = Path(__file__).resolve().relative_to(REPO).as_posix()
REALK8S_VARIABLE = 'VIRTFLEET_REALK8S'
SHARED = 'sha' + 'red'                  # the folder beside the checkout
UP = '..' + '/' + SHARED
DEV = '/' + 'work' + '/'                # the development machine's root
REALK8S_DEFAULT = UP + '/realk8s'
# (pattern, what it is); the realk8s default is handled apart.
OUTSIDE = (
    (re.compile(re.escape(UP) + r'\b(?!/realk8s)'), 'a path into the folder beside the repository'),
    (re.compile(r'(?<![\w.~-])' + re.escape(DEV)), 'an absolute path of the development machine'),
    (re.compile(r'parent\s*/\s*["\']%s["\'](?!\s*/\s*["\']realk8s["\'])' % SHARED),
     'a path into the folder beside the repository, built in code'),
    (re.compile(SHARED + ' folder', re.I), "a pointer to the project's folder beside the repository"),
    (re.compile(r'research notes', re.I), 'a pointer to research notes outside the repository'),
    (re.compile(r'\bDESIGN\.md\b'), 'a pointer to DESIGN.md, which is not in the repository'),
)
REALK8S_IN_CODE = re.compile(r'parent\s*/\s*["\']%s["\']\s*/\s*["\']realk8s["\']' % SHARED)


def repository_files():
    out = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], cwd=REPO,
                         capture_output=True, check=True).stdout.decode()
    return sorted({name for name in out.split('\0') if name})


def text_of(name):
    path = REPO / name
    if not path.is_file() or path.is_symlink():
        return None  # deleted in the work tree, or a link (its target is scanned on its own)
    data = path.read_bytes()
    if b'\0' in data[:8192]:
        return None
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError:
        return None


def findings(name, text):
    """['file:line: what (the line)'] of the references outside the repository in one file's text."""
    found = []
    names_variable = REALK8S_VARIABLE in text
    for number, line in enumerate(text.splitlines(), 1):
        where = '%s:%d' % (name, number)
        for pattern, what in OUTSIDE:
            if pattern.search(line):
                found.append('%s: %s: %s' % (where, what, line.strip()[:120]))
        if (REALK8S_DEFAULT in line or REALK8S_IN_CODE.search(line)) and not names_variable:
            found.append('%s: %s without %s, the variable that overrides it: %s' % (
                where, REALK8S_DEFAULT, REALK8S_VARIABLE, line.strip()[:120]))
    return found


def test_the_scan_sees_what_it_looks_for():
    # The planted references are assembled at run time: this file itself must not point outside the repository.
    up, dev = UP, DEV
    text = ('a = "%s/kubevirt-api"\nb = "%sbench-results/x.json"\nsee DESIGN.md in the %s folder\n'
            'c = REPO.parent / "%s" / "notes"\nd = REPO.parent / "%s" / "realk8s"\ne = "%s/realk8s"\n'
            'f = "tests/fixtures/kubevirt-api"\ng = "$HOME%sx"\n') % (up, dev, SHARED, SHARED, SHARED, up, dev)
    found = findings('x.py', text)
    assert [f.split(':', 2)[1] for f in found] == ['1', '2', '3', '3', '4', '5', '6']
    assert findings('x.py', text.replace(up + '/kubevirt-api', '') + '# VIRTFLEET_REALK8S\n') == [
        found[1], found[2], found[3], found[4]]
    assert findings('Makefile', 'VIRTFLEET_REALK8S ?= $(abspath $(CURDIR)/%s/realk8s)\n' % up) == []


def test_no_file_points_outside_the_repository():
    files = repository_files()
    assert 'README.md' in files and 'plugins/module_utils/_client.py' in files, 'git ls-files did not list the checkout'
    found = []
    for name in files:
        if name == THIS:
            continue
        text = text_of(name)
        if text is not None:
            found.extend(findings(name, text))
    assert not found, 'references outside the repository:\n' + '\n'.join(found)


@pytest.mark.parametrize('name', ['Makefile', 'tests/kubeapi/realserver.py', 'tests/realk8s/conftest.py'])
def test_the_realk8s_default_is_the_documented_one(name):
    """The places that resolve VIRTFLEET_REALK8S fall back to REALK8S_DEFAULT, as README "Testing" says."""
    text = (REPO / name).read_text()
    assert REALK8S_VARIABLE in text
    assert REALK8S_DEFAULT in text or REALK8S_IN_CODE.search(text), name
    assert REALK8S_DEFAULT in (REPO / 'README.md').read_text()
