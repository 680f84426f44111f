#!/usr/bin/env bash
# ansible-test sanity of one ansible-core line on the release tarball, installed as users install it (`make sanity-<line>`).
#
# Usage: tests/sanity/run_sanity.sh VENV PYTHON_VERSION TARBALL DIR [ansible-test sanity options...]
#   VENV            the line's virtualenv: its ansible-galaxy installs TARBALL, its ansible-test runs the tests
#   PYTHON_VERSION  the virtualenv's Python version (3.11, or 3.12 for ansible-core 2.20+): ansible-test then runs
#                   the tests with the virtualenv's own interpreter
#   DIR             emptied, then TARBALL is installed to DIR/ansible_collections/virtfleet/kubevirt (one DIR per line:
#                   ansible-test writes its tests/output into the collection)
# Nothing is excluded and the artifact carries no ignore file: what ships must pass as it is.
set -euo pipefail

if (($# < 4)); then
    echo "usage: $0 VENV PYTHON_VERSION TARBALL DIR [ansible-test sanity options...]" >&2
    exit 2
fi
venv=$(cd "$1" && pwd) python=$2 tarball=$3 dir=$4
shift 4
here=$(cd "$(dirname "$0")" && pwd)

# The install sees DIR alone (the Makefile's ANSIBLE_COLLECTIONS_PATH has the checkout as virtfleet.kubevirt: "already
# installed") and --force ignores any other copy; the tests must not see the checkout either.
unset ANSIBLE_COLLECTIONS_PATH
rm -rf "$dir" && mkdir -p "$dir"
ANSIBLE_COLLECTIONS_PATH=$dir "$venv/bin/ansible-galaxy" collection install --offline --force -p "$dir" "$tarball"
root=$(cd "$dir/ansible_collections/virtfleet/kubevirt" && pwd)

# Every sanity virtualenv is bootstrapped with a get-pip script from a host we cannot reach: provide it (offline).
"$venv/bin/python" "$here/pip_bootstrap.py"

# ansible-test looks for .git upwards from the working directory: it would find this checkout's, ask git for the
# files under .build/ (ignored, so none) and test nothing. ANSIBLE_TEST_CONTENT_ROOT makes the installed collection
# the content root as it is: no version control there, so ansible-test lists every file in it. Checked below.
cd "$root"
export ANSIBLE_TEST_CONTENT_ROOT=$root
files=$(find . -path ./tests/output -prune -o -type f -print | wc -l)
seen=$("$venv/bin/python" -c 'from ansible_test._internal.data import data_context; print(len(data_context().content.all_files()))')
if [[ $seen != "$files" ]]; then
    echo "ansible-test would test $seen of the $files files installed in $root: fix the content root above" >&2
    exit 1
fi
version=$("$venv/bin/ansible-test" --version | awk '{print $NF}')
echo "ansible-test $version sanity on $root ($files files, Python $python)"

# flock: all checkouts share ansible-test's virtualenvs in ~/.ansible/test, and two runs creating the same one at
# once break each other's pip installs.
mkdir -p "$HOME/.ansible/test"
rc=0
flock "$HOME/.ansible/test/sanity.lock" "$venv/bin/ansible-test" sanity --python "$python" "$@" || rc=$?
echo "ansible-test $version sanity of $(basename "$tarball"): $( ((rc)) && echo "FAILED (exit $rc)" || echo passed)"
exit "$rc"
