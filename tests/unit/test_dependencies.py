"""Honest dependencies: every package of requirements.txt is imported by the shipped code, every import is declared.

The shipped Python (plugins/**, roles/**) is parsed, not imported: every ``import x`` / ``from x import y`` anywhere in
a file counts (inside try/except ImportError and functions too), by its top-level name. The standard library
(sys.stdlib_module_names), ansible-core (``ansible``, ``ansible_collections``), ``__future__`` and relative imports
are not requirements. requirements.txt's distributions are mapped to their import names by IMPORT_NAMES below.
The execution environment definition (meta/execution-environment.yml) must install exactly requirements.txt, and
the ``requirements:`` the plugins document (ansible-doc) must be those packages with the same lower bounds.
"""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SHIPPED_PY = ('plugins', 'roles')
# Distribution name (normalised, PEP 503) -> the top-level module it installs. A new requirement needs a row here.
IMPORT_NAMES = {'kubernetes': 'kubernetes', 'urllib3': 'urllib3', 'pyyaml': 'yaml', 'websocket-client': 'websocket'}
# Not third-party: provided by ansible-core itself or by the collection loader.
NOT_REQUIREMENTS = {'ansible', 'ansible_collections', '__future__'}
# Required by nothing that ships (issue #17); naming it again in requirements.txt or an import fails here.
DROPPED = {'jmespath'}

REQ_LINE = re.compile(r'^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;#]*)')


def normalise(name):
    return re.sub(r'[-_.]+', '-', name).lower()


def parse_requirements(lines, origin):
    """{normalised distribution name: specifier text} of requirement lines (comments and blanks skipped)."""
    found = {}
    for number, line in enumerate(lines, 1):
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        assert not line.startswith('-'), '%s:%d: pip options (%s) are not expected in the runtime requirements' % (
            origin, number, line)
        match = REQ_LINE.match(line)
        assert match, '%s:%d: cannot read requirement %r' % (origin, number, line)
        name = normalise(match.group(1))
        assert name not in found, '%s:%d: %s declared twice' % (origin, number, name)
        found[name] = re.sub(r'\s+', '', match.group(3))
    return found


def declared():
    return parse_requirements((REPO / 'requirements.txt').read_text().splitlines(), 'requirements.txt')


def shipped_python_files():
    files = sorted(p for top in SHIPPED_PY for p in (REPO / top).rglob('*.py') if '__pycache__' not in p.parts)
    assert any(p.name == '_client.py' for p in files), 'plugins/module_utils/_client.py not found: wrong REPO?'
    return files


def imported_modules(source, origin):
    """{top-level module name: [line numbers]} of the absolute imports anywhere in a Python source."""
    found = {}
    for node in ast.walk(ast.parse(source, filename=origin)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module]
        else:
            continue
        for name in names:
            found.setdefault(name.split('.', 1)[0], []).append(node.lineno)
    return found


def third_party_imports():
    """{top-level module: ['file:line', ...]} over the shipped Python, without stdlib and ansible-core."""
    found = {}
    for path in shipped_python_files():
        rel = path.relative_to(REPO).as_posix()
        for name, lines in imported_modules(path.read_text(), rel).items():
            if name in sys.stdlib_module_names or name in NOT_REQUIREMENTS:
                continue
            found.setdefault(name, []).extend('%s:%d' % (rel, line) for line in lines)
    return found


def test_import_scan_sees_guarded_nested_and_relative_imports():
    source = ('import os.path\nfrom . import sibling\nfrom .x import y\ntry:\n    import yaml\nexcept ImportError:\n'
              '    yaml = None\n\ndef f():\n    from urllib3.contrib.socks import SOCKSProxyManager\n'
              '    import kubernetes.config as kc\n')
    assert imported_modules(source, 'x.py') == {'os': [1], 'yaml': [5], 'urllib3': [10], 'kubernetes': [11]}


def test_every_requirement_has_an_import_name():
    unknown = set(declared()) - set(IMPORT_NAMES)
    assert not unknown, ('requirements.txt declares %s: add its import name to IMPORT_NAMES in this test '
                         '(and import it from plugins/, or do not declare it)' % sorted(unknown))


def test_every_declared_package_is_imported_by_the_shipped_code():
    imports = third_party_imports()
    unused = sorted(name for name in declared() if IMPORT_NAMES.get(name) not in imports)
    assert not unused, 'requirements.txt declares %s but no file under plugins/ or roles/ imports it' % unused


def test_every_third_party_import_is_declared():
    declared_modules = {IMPORT_NAMES.get(name) for name in declared()}
    undeclared = {name: where for name, where in third_party_imports().items() if name not in declared_modules}
    assert not undeclared, 'imported but not in requirements.txt: %s' % '; '.join(
        '%s (%s)' % (name, ', '.join(where[:3])) for name, where in sorted(undeclared.items()))


def test_dropped_packages_stay_dropped():
    assert not DROPPED & set(declared()), 'requirements.txt names %s again' % sorted(DROPPED & set(declared()))
    assert not DROPPED & set(third_party_imports())


def test_the_direct_imports_are_declared_with_lower_bounds():
    """urllib3 is imported directly (the client's pool); the bound is what _client.py handles (1.26 and 2.x)."""
    reqs = declared()
    assert set(reqs) == {'kubernetes', 'urllib3', 'pyyaml', 'websocket-client'}
    for name, spec in reqs.items():
        assert spec.startswith('>='), '%s has no lower bound in requirements.txt: %r' % (name, spec)
    assert reqs['urllib3'] == '>=1.26.0'


def execution_environment_files():
    """meta/execution-environment.yml (the file ansible-builder reads from an installed collection) and any
    execution-environment*.yml definition at the top of the repository."""
    tracked = subprocess.run(['git', 'ls-files', '-z'], cwd=REPO, capture_output=True, check=True).stdout.decode()
    names = [n for n in tracked.split('\0') if n and re.fullmatch(r'(meta/|)execution-environment[^/]*\.ya?ml', n)]
    if (REPO / 'meta' / 'execution-environment.yml').is_file() and 'meta/execution-environment.yml' not in names:
        names.append('meta/execution-environment.yml')
    return sorted(names)


def python_dependencies_of(name):
    """The requirements an execution environment definition installs: its dependencies.python, a file (relative to
    the collection root, as ansible-builder reads it, or to the definition's directory) or an inline list."""
    definition = yaml.safe_load((REPO / name).read_text()) or {}
    python = (definition.get('dependencies') or {}).get('python')
    if python is None:
        return None
    if isinstance(python, list):
        return parse_requirements(python, name)
    for base in (REPO, (REPO / name).parent):
        if (base / python).is_file():
            return parse_requirements((base / python).read_text().splitlines(), python)
    pytest.fail('%s: dependencies.python names %s, which does not exist' % (name, python))


def test_execution_environment_installs_exactly_requirements_txt():
    names = execution_environment_files()
    assert 'meta/execution-environment.yml' in names, 'meta/execution-environment.yml is missing'
    reqs = declared()
    for name in names:
        python = python_dependencies_of(name)
        if name == 'meta/execution-environment.yml':
            assert python is not None, '%s declares no python dependencies' % name
        if python is not None:
            assert python == reqs, '%s installs %s, requirements.txt declares %s' % (name, python, reqs)


def documented_requirements():
    """[(file, requirement text)] of the ``requirements:`` lists in the plugins' documentation strings."""
    found = []
    for path in sorted((REPO / 'plugins').rglob('*.py')):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                    and isinstance(node.value.value, str) and 'requirements:' in node.value.value):
                continue
            doc = yaml.safe_load(node.value.value)
            if isinstance(doc, dict):
                found.extend((path.relative_to(REPO).as_posix(), item) for item in doc.get('requirements') or ())
    return found


def test_documented_requirements_are_the_declared_ones():
    reqs = declared()
    documented = documented_requirements()
    names = set()
    for origin, item in documented:
        match = re.match(r'^([A-Za-z0-9._-]+)\s*(>=\s*[0-9][0-9.]*)?', item)
        name = normalise(match.group(1))
        if name == 'python':
            continue
        names.add(name)
        assert name in reqs, '%s documents requirement %r, which requirements.txt does not declare' % (origin, item)
        assert match.group(2) and re.sub(r'\s+', '', match.group(2)) == reqs[name], (
            '%s documents %r, requirements.txt declares %s%s' % (origin, item, name, reqs[name]))
    assert names == set(reqs), 'the plugins document %s, requirements.txt declares %s' % (sorted(names), sorted(reqs))
