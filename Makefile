# One set-up, one test command. See README.md "Testing".
PYTHON      ?= python3.11
VENV        ?= .venv
VENV_FLOOR  ?= .venv-2.16
CORE_NEWEST ?= ansible-core>=2.19,<2.20
CORE_FLOOR  ?= ansible-core>=2.16,<2.17
COLL_ROOT   := .build/collections
COLL_LINK   := $(COLL_ROOT)/ansible_collections/virtfleet/kubevirt
PYTEST_ARGS ?=

export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/$(COLL_ROOT)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: venv collection test test-newest test-floor sanity lint demo clean

venv: $(VENV)/.stamp $(VENV_FLOOR)/.stamp collection

$(VENV)/.stamp: requirements.txt requirements-test.txt
	rm -rf $(VENV) && $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-test.txt '$(CORE_NEWEST)'
	touch $@

$(VENV_FLOOR)/.stamp: requirements.txt requirements-test.txt
	rm -rf $(VENV_FLOOR) && $(PYTHON) -m venv $(VENV_FLOOR)
	$(VENV_FLOOR)/bin/pip install -q --disable-pip-version-check -r requirements-test.txt '$(CORE_FLOOR)'
	touch $@

# Ansible finds the collection at ansible_collections/virtfleet/kubevirt: a link to this checkout.
collection:
	mkdir -p $(dir $(COLL_LINK))
	ln -sfn $(CURDIR) $(COLL_LINK)

# The README's test command: unit + emulator conformance + integration, on the newest
# ansible-core Python 3.11 supports (2.19) and on our floor (2.16).
test: venv
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS) tests/unit tests/kubeapi tests/integration
	$(VENV_FLOOR)/bin/python -m pytest $(PYTEST_ARGS) tests/unit tests/integration

test-newest: venv
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS) tests/unit tests/kubeapi tests/integration

test-floor: venv
	$(VENV_FLOOR)/bin/python -m pytest $(PYTEST_ARGS) tests/unit tests/integration

clean:
	rm -rf $(VENV) $(VENV_FLOOR) .build tests/output .pytest_cache
