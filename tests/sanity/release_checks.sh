#!/usr/bin/env bash
# Release checks of the built collection (`make release-checks`, part of `make sanity`):
#   1. galaxy-importer on TARBALL as Automation Hub runs it (tests/sanity/galaxy-importer.cfg: versions below 1.0.0
#      refused, a required tag, ansible-doc and ansible-lint on, ansible-test off: it needs a container engine and
#      `make sanity` runs ansible-test itself). Any ERROR or WARNING line fails, ansible-lint's findings included.
#   2. `ansible-builder create -f execution-environment.yml` into a temporary context: its Containerfile installs
#      the tarball and its _build/ holds the tarball (the same bytes) and requirements.txt. The image's galaxy stage
#      and ansible-builder's introspection are then replayed here (no container engine): the tarball installs from
#      _build/ as the Containerfile asks, and introspection finds the Python and system packages that
#      meta/execution-environment.yml declares in the installed collection.
#   3. The changelog: `antsibull-changelog lint`, and galaxy.yml's version is a release of changelogs/changelog.yaml
#      and a section of CHANGELOG.rst.
#
# Usage: tests/sanity/release_checks.sh VENV TARBALL
#   VENV     virtualenv with galaxy-importer, ansible-builder and antsibull-changelog
#            (tests/sanity/requirements-release.txt)
#   TARBALL  the release artifact, .build/dist/virtfleet-kubevirt-<version>.tar.gz (`make dist`)
set -euo pipefail

if (($# != 2)); then
    echo "usage: $0 VENV TARBALL" >&2
    exit 2
fi
venv=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)
tarball=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
name=$(basename "$tarball")
py=$venv/bin/python
if [[ ! -f $tarball ]]; then
    echo "release checks: no $2 (make dist builds it)" >&2
    exit 2
fi
cd "$root"
# The Makefile exports ANSIBLE_COLLECTIONS_PATH with the checkout as virtfleet.kubevirt: the checks must only see
# the tarball.
unset ANSIBLE_COLLECTIONS_PATH
export PATH=$venv/bin:$PATH
tmp=$(mktemp -d "${TMPDIR:-/tmp}/release-checks.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failed=0
fail() {
    echo "release checks: FAILED: $*" >&2
    failed=1
}

# ---- 1. galaxy-importer ----
echo "== galaxy-importer $("$py" -c 'import importlib.metadata as m; print(m.version("galaxy-importer"))') on $name"
export GALAXY_IMPORTER_CONFIG=$root/tests/sanity/galaxy-importer.cfg
# The importer reads /etc/galaxy-importer/galaxy-importer.cfg when GALAXY_IMPORTER_CONFIG names no file, and a
# GALAXY_IMPORTER_<OPTION> variable overrides any file: check through its own loader that our settings are in force.
"$py" - <<'EOF' || fail "galaxy-importer does not use tests/sanity/galaxy-importer.cfg"
from galaxy_importer import config
cfg = config.Config(config_data=config.ConfigFile.load())
wanted = {'require_v1_or_greater': True, 'check_required_tags': True, 'run_ansible_lint': True, 'run_ansible_test': False}
wrong = {key: getattr(cfg, key) for key, value in wanted.items() if getattr(cfg, key) is not value}
if wrong:
    raise SystemExit(f'galaxy-importer settings {wrong} instead of {wanted}')
EOF
mkdir "$tmp/importer"
# It writes importer_result.json into the working directory.
if ! (cd "$tmp/importer" && "$py" -m galaxy_importer.main "$tarball") >"$tmp/importer.log" 2>&1; then
    fail "galaxy-importer refused $name"
fi
tail -n 4 "$tmp/importer.log"
if grep -E '^(ERROR|WARNING|CRITICAL)' "$tmp/importer.log" >"$tmp/importer.findings"; then
    fail "galaxy-importer reported $(wc -l <"$tmp/importer.findings") error/warning line(s):"
    cat "$tmp/importer.findings" >&2
fi
grep -q '^Importer processing completed successfully$' "$tmp/importer.log" || fail "galaxy-importer did not complete"

# ---- 2. execution environment ----
echo "== ansible-builder $("$py" -c 'import importlib.metadata as m; print(m.version("ansible-builder"))'): create" \
    "-f execution-environment.yml"
ctx=$tmp/ee-context
if ansible-builder create -f execution-environment.yml --context "$ctx" --output-filename Containerfile \
    >"$tmp/builder.log" 2>&1; then
    cat "$tmp/builder.log"
    build=$ctx/_build
    cmp -s "$tarball" "$build/collections/$name" ||
        fail "the build context has no copy of $name in _build/collections/ (execution-environment.yml" \
            "additional_build_files: src .build/dist/$name)"
    cmp -s requirements.txt "$build/requirements.txt" || fail "the build context's _build/requirements.txt is not requirements.txt"
    # The galaxy requirement that installs the tarball: its path inside _build/, as the Containerfile's galaxy stage
    # (WORKDIR /build, a copy of _build/) runs ansible-galaxy.
    "$py" - "$build/requirements.yml" "collections/$name" <<'EOF' || fail "execution-environment.yml does not install $name"
import sys
import yaml
with open(sys.argv[1]) as f:
    wanted = {'name': sys.argv[2], 'type': 'file'}
    found = yaml.safe_load(f).get('collections') or []
if wanted not in found:
    raise SystemExit(f'{sys.argv[1]}: collections {found}; expected {wanted} (galaxy.yml version and the tarball names'
                     ' in execution-environment.yml must agree)')
EOF
    grep -qx 'COPY _build /build' "$ctx/Containerfile" || fail "the Containerfile does not copy _build/ into /build"
    grep -qE '^RUN .*ansible-galaxy collection install .*-r requirements\.yml' "$ctx/Containerfile" ||
        fail "the Containerfile does not install the galaxy requirements"
    grep -qE '^RUN .*introspect\.py introspect --user-pip=requirements\.txt' "$ctx/Containerfile" ||
        fail "the Containerfile does not install requirements.txt"
    # Replay of the galaxy stage and of the introspection of the builder stage.
    if (cd "$build" && ANSIBLE_GALAXY_DISABLE_GPG_VERIFY=1 ansible-galaxy collection install --offline \
        -r requirements.yml --collections-path "$tmp/ee-collections") >"$tmp/galaxy.log" 2>&1; then
        "$py" "$build/scripts/introspect.py" introspect "$tmp/ee-collections" --user-pip="$build/requirements.txt" \
            --write-pip="$tmp/ee-requirements.txt" --write-bindep="$tmp/ee-bindep.txt" >"$tmp/introspect.log" 2>&1 ||
            { tail -n 5 "$tmp/introspect.log" >&2; : >"$tmp/ee-requirements.txt"; : >"$tmp/ee-bindep.txt"; }
        "$py" - "$tmp/ee-requirements.txt" "$tmp/ee-bindep.txt" <<'EOF' || fail "introspection of the installed collection"
import re
import sys
from ansible_builder._target_scripts.introspect import EXCLUDE_REQUIREMENTS
mark = '# from collection virtfleet.kubevirt'
def entries(path):
    with open(path) as f:
        return [line.split('#')[0].strip() for line in f if line.strip() and not line.startswith('#')]
pip = [line.split(mark)[0].strip() for line in open(sys.argv[1]) if mark in line]
bindep = [line.split(mark)[0].strip() for line in open(sys.argv[2]) if mark in line]
# ansible-builder drops what every image has (PyYAML: ansible-core needs it).
wanted_pip = [req for req in entries('requirements.txt')
              if re.split(r'[<>=!~ \[;]', req)[0].lower() not in EXCLUDE_REQUIREMENTS]
missing = [req for req in wanted_pip if req not in pip] + [req for req in entries('bindep.txt') if req not in bindep]
if missing or not wanted_pip:
    raise SystemExit(f'introspection of the installed collection found pip {pip} and bindep {bindep}; missing {missing}'
                     ' (meta/execution-environment.yml names files relative to the collection root)')
print(f'introspection of the installed collection: pip {pip}, bindep {bindep}')
EOF
    else
        cat "$tmp/galaxy.log" >&2
        fail "ansible-galaxy could not install _build/requirements.yml from the build context"
    fi
else
    cat "$tmp/builder.log" >&2
    fail "ansible-builder create -f execution-environment.yml"
fi

# ---- 3. changelog ----
version=$(sed -n 's/^version: *//p' galaxy.yml)
echo "== antsibull-changelog $("$py" -c 'import importlib.metadata as m; print(m.version("antsibull-changelog"))') lint"
antsibull-changelog lint || fail "antsibull-changelog lint"
"$py" - "$version" <<'EOF' || fail "changelog"
import sys
import yaml
version = sys.argv[1]
with open('changelogs/changelog.yaml') as f:
    releases = yaml.safe_load(f).get('releases') or {}
if version not in releases:
    raise SystemExit(f'changelogs/changelog.yaml has no release {version} (galaxy.yml): add a release_summary fragment and'
                     f' run antsibull-changelog release --version {version}')
with open('CHANGELOG.rst') as f:
    if f'\nv{version}\n' not in f.read():
        raise SystemExit(f'CHANGELOG.rst has no section v{version}: run antsibull-changelog generate')
print(f'changelog: release {version} in changelogs/changelog.yaml and CHANGELOG.rst')
EOF

if ((failed)); then
    echo "release checks of $name: FAILED" >&2
    exit 1
fi
echo "release checks of $name: ok (galaxy-importer clean with the v1 requirement, execution environment, changelog)"
