# baremetal.lb — everything a developer or CI runs.
#   make demo    build the lab on this machine and run site.yml against it
#   make test    lint, sanity, unit, integration and speaker tests
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
# ansible-test needs the collection under ansible_collections/NAMESPACE/NAME:
# a copy for ansible-test, a symlink for pytest and ansible-playbook.
ANSIBLE_TEST_ROOT := build/ansible-test/ansible_collections/baremetal/lb
COLLECTIONS := $(abspath build/collections)
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export PATH := $(BIN):$(PATH)

.PHONY: kubernetes-core cluster-bins lab-cluster-bins cluster cluster-destroy lab-deps postgresql-deps prometheus-deps rules-test collection-check ansible-test-tree test demo demo-destroy molecule venv lint sanity units integration speaker-test kubernetes-test bench fuzz collection clean

test: lint rules-test sanity units integration collection-check speaker-test kubernetes-test molecule
	@echo "make test: all stages passed"

# PostgreSQL for the ledger's tests: each run starts its own server on 127.0.0.1 in a temporary
# directory (tests/postgresql_server.py) and stops it afterwards; these stages fail without it.
postgresql-deps:
	sh scripts/install-postgresql-deps.sh

# promtool from Debian's prometheus package, for rules-test; fails (never skips) where it cannot install it.
prometheus-deps:
	sh scripts/install-prometheus-deps.sh

# The alert rules the role ships (docs/observability.md): each alert on synthetic series, firing and not
# firing; the dashboard's queries parsed by promtool as recording rules.
ALERT_RULES := roles/speaker/files/prometheus/baremetal-lb-alerts.yml
rules-test: $(STAMP) prometheus-deps
	promtool check rules $(ALERT_RULES)
	promtool test rules tests/prometheus/alerts_test.yml
	mkdir -p build && $(BIN)/python tests/prometheus/alert_series.py dashboard-rules build/dashboard-queries.yml
	promtool check rules build/dashboard-queries.yml

# The lab (docs/lab.md): podman hosts on this machine, site.yml against them.
LAB := ANSIBLE_CALLBACK_RESULT_FORMAT=yaml ANSIBLE_FORKS=10 $(BIN)/ansible-playbook -i playbooks/inventory/lab

# podman, runc and debootstrap on the control node, before anything calls podman
lab-deps:
	sh scripts/install-lab-deps.sh

# The lab's cluster (docs/lab.md) needs the control plane's binaries and helm, and kubernetes.core.
demo: lab-deps prometheus-deps $(STAMP) $(COLLECTIONS)/ansible_collections/baremetal/lb lab-cluster-bins kubernetes-core
	$(LAB) playbooks/lab.yml

# Molecule scenarios (extensions/molecule): the same podman hosts, named lbmol-*
molecule: lab-deps cluster-bins $(STAMP) $(COLLECTIONS)/ansible_collections/baremetal/lb
	$(BIN)/molecule test -s default
	$(BIN)/molecule test -s upgrade

# The Kubernetes control plane the tests use (docs/kubernetes.md), for a person:
# built from Go modules into build/cluster/bin, started on loopback, left up.
CLUSTER_NODES ?= node1,node2,node3
SPEAKER_VENV := $(abspath speaker/.venv)
# LB_CLUSTER_BIN (read by controlplane.py too) points at binaries built elsewhere
cluster-bins:
	@if [ -n "$(LB_CLUSTER_BIN)" ]; then echo "cluster binaries from LB_CLUSTER_BIN=$(LB_CLUSTER_BIN)"; \
	else sh scripts/build-cluster.sh; fi

# the same, kube-proxy and helm, for the lab (the tests need neither)
lab-cluster-bins:
	@if [ -n "$(LB_CLUSTER_BIN)" ]; then echo "cluster binaries from LB_CLUSTER_BIN=$(LB_CLUSTER_BIN)"; \
	else sh scripts/build-cluster.sh lab; fi

# with the controller, serving the pools in CLUSTER_POOLS (edit it: lb_pools as in an inventory)
CLUSTER_POOLS ?= tests/kubernetes/cluster-pools.yml
cluster: cluster-bins $(SPEAKER_VENV)/.kubernetes
	$(SPEAKER_VENV)/bin/python tests/kubernetes/controlplane.py up --nodes $(CLUSTER_NODES) --pools $(CLUSTER_POOLS)

cluster-destroy:
	$(PYTHON) tests/kubernetes/controlplane.py down

# IMAGE=1 also removes the cached lab image
demo-destroy: $(STAMP) $(COLLECTIONS)/ansible_collections/baremetal/lb
	$(LAB) playbooks/lab_destroy.yml $(if $(IMAGE),-e lab_destroy_image=true)

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(COLLECTIONS)/ansible_collections/baremetal/lb:
	mkdir -p $(COLLECTIONS)/ansible_collections/baremetal
	ln -sfn $(abspath .) $@

# kubernetes.core for site.yml with lb_kubeconfig: taken from the `ansible` package's wheel on PyPI
# (it bundles the collection; no Galaxy needed), unpacked beside ours. ANSIBLE_WHEEL pins which.
ANSIBLE_WHEEL ?= ansible==12.3.0
$(COLLECTIONS)/ansible_collections/kubernetes/core/MANIFEST.json: $(STAMP)
	rm -rf build/ansible-wheel && mkdir -p build/ansible-wheel $(COLLECTIONS)/ansible_collections/kubernetes
	$(BIN)/python -m pip download --quiet --disable-pip-version-check --no-deps --dest build/ansible-wheel '$(ANSIBLE_WHEEL)'
	cd build/ansible-wheel && $(BIN)/python -m zipfile -e ansible-*.whl unpacked
	rm -rf $(COLLECTIONS)/ansible_collections/kubernetes/core
	mv build/ansible-wheel/unpacked/ansible_collections/kubernetes/core $(COLLECTIONS)/ansible_collections/kubernetes/core
	rm -rf build/ansible-wheel
	test -f $@
kubernetes-core: $(COLLECTIONS)/ansible_collections/kubernetes/core/MANIFEST.json

lint: $(STAMP) $(COLLECTIONS)/ansible_collections/baremetal/lb
	$(BIN)/ruff check .
	cd $(COLLECTIONS) && $(BIN)/mypy --config-file $(abspath mypy.ini) \
	  -p ansible_collections.baremetal.lb.plugins.module_utils \
	  -p ansible_collections.baremetal.lb.plugins.modules
	ln -sfn ../../../plugins/module_utils speaker/src/lbspeaker/core  # lbspeaker.core, as the wheel packs it
	cd speaker && $(BIN)/mypy --strict --python-version 3.11 src/lbspeaker
	$(BIN)/ansible-lint
	$(BIN)/antsibull-changelog lint

# The test tree is a fresh copy of what git tracks plus new files not ignored.
ansible-test-tree:
	rm -rf build/ansible-test && mkdir -p $(ANSIBLE_TEST_ROOT)
	git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -C $(ANSIBLE_TEST_ROOT) -xf -
	# its own git index, so ansible-test lists these files and not the outer repo's
	cd $(ANSIBLE_TEST_ROOT) && git init -q && git add -A

sanity: $(STAMP) ansible-test-tree
	$(BIN)/python tests/sanity/install_get_pip_standin.py
	cd $(ANSIBLE_TEST_ROOT) && $(BIN)/ansible-test sanity --venv --python 3.11 --color no

units: $(STAMP) postgresql-deps
	$(BIN)/pytest -q tests/unit

# The targets run against both ledgers: SQLite files, and a PostgreSQL server started around the run
# (its URL reaches them as lb_test_postgresql, through ansible-test's integration_config.yml).
integration: $(STAMP) ansible-test-tree postgresql-deps
	$(BIN)/python tests/postgresql_server.py --vars-file $(ANSIBLE_TEST_ROOT)/tests/integration/integration_config.yml -- \
	  sh -c 'cd $(ANSIBLE_TEST_ROOT) && $(BIN)/ansible-test integration --local --python 3.11 --color no'

speaker-test:
	@if [ -f speaker/Makefile ]; then $(MAKE) -C speaker test; else echo "speaker: no tests yet"; fi

# The controller against the real control plane, from the speaker's venv with its kubernetes extra.
# Nothing skips: a missing binary or client fails with its reason.
$(SPEAKER_VENV)/.kubernetes: speaker/pyproject.toml
	[ -x $(SPEAKER_VENV)/bin/python ] || $(PYTHON) -m venv $(SPEAKER_VENV)
	$(SPEAKER_VENV)/bin/pip install --quiet --disable-pip-version-check -e 'speaker[test,kubernetes]'
	touch $@

# The collision tests run allocate and pool_info from the collection's venv (kubernetes client included).
kubernetes-test: cluster-bins $(SPEAKER_VENV)/.kubernetes $(STAMP) $(COLLECTIONS)/ansible_collections/baremetal/lb kubernetes-core
	$(SPEAKER_VENV)/bin/pytest -q speaker/tests/unit/test_controller_decisions.py tests/kubernetes

# Coverage-guided fuzzing (atheris) of the network decoders and the config parser, FUZZ_SECONDS per
# target; findings and the grown corpus go to build/fuzz (make test runs them 3 s each).
FUZZ_SECONDS ?= 300
fuzz: $(SPEAKER_VENV)/.kubernetes
	$(SPEAKER_VENV)/bin/python speaker/tests/fuzz/run.py --seconds $(FUZZ_SECONDS) --corpus-out build/fuzz

bench: $(STAMP) $(COLLECTIONS)/ansible_collections/baremetal/lb postgresql-deps
	@for b in bench/*; do [ -x "$$b" ] && { echo "== $$b"; "$$b" || exit 1; }; done

collection: $(STAMP)
	rm -rf build/dist && mkdir -p build/dist
	$(BIN)/ansible-galaxy collection build --force --output-path build/dist .

# The tarball users install from Galaxy: no tests, benches or scenarios in it,
# it installs, and ansible-doc teaches every module from the installed copy.
collection-check: collection
	@if tar -tzf build/dist/baremetal-lb-*.tar.gz | grep -E '^(tests|bench|extensions|speaker/tests|\.ci)/'; then \
	  echo "the collection tarball contains test or scenario files (above)"; exit 1; fi
	rm -rf build/installed
	$(BIN)/ansible-galaxy collection install --offline --force -p build/installed build/dist/baremetal-lb-*.tar.gz
	ANSIBLE_COLLECTIONS_PATH=$(abspath build/installed) $(BIN)/ansible-doc -t module \
	  baremetal.lb.address_pool baremetal.lb.allocate baremetal.lb.ledger baremetal.lb.pool_info baremetal.lb.validate \
	  baremetal.lb.service_manifest baremetal.lb.speaker_status baremetal.lb.metallb_import > build/dist/ansible-doc.txt
	# a Galaxy user's first command: site.yml by its FQCN, in check mode, writing no ledger
	rm -rf build/galaxy-check
	ANSIBLE_COLLECTIONS_PATH=$(abspath build/installed) $(BIN)/ansible-playbook -i tests/galaxy/inventory.yml \
	  baremetal.lb.site --check --diff --limit localhost -e lb_ledger=$(abspath build/galaxy-check)/ledger.sqlite3 \
	  > build/dist/site-check.txt
	test ! -e build/galaxy-check
	@echo "collection tarball: OK ($$(tar -tzf build/dist/baremetal-lb-*.tar.gz | wc -l) entries)"

clean:
	rm -rf build tests/output
