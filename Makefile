# archfleet.multiarch: the two commands a newcomer runs are `make demo` and `make test`.
# Both install what they need (Debian packages, a pinned virtualenv) and start the
# services they use on loopback only.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

ROOT        := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV        ?= $(ROOT)/.venv
PYTHON      ?= python3
BUILD       := $(ROOT)/build
# ansible needs the collection under ansible_collections/<namespace>/<name>: link the checkout.
COLL_ROOT   := $(BUILD)/collections
COLL_LINK   := $(COLL_ROOT)/ansible_collections/archfleet/multiarch
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# chromium: tests/integration/test_audit_browser.py opens the HTML audit report in a headless browser.
# podman buildah runc uidmap: tests/integration/test_podman_engine.py (the podman build engine; runc because
# crun refuses hosts that mount cgroup v1 and v2 side by side); runc is also the OCI worker of buildkitd
# (tests/integration/test_buildkit.py, harness/buildkitd.py).
# postgresql: the private database of Pulp in tests/integration/test_pulp.py (harness/pulp.py).
# qemu-system-arm qemu-utils mmdebstrap arch-test e2fsprogs kmod cpio: the arm64 machine of `make vm`
# (tools/arm64_vm.sh; mmdebstrap needs arch-test for a foreign architecture).
APT_PACKAGES := docker-registry skopeo docker.io qemu-user-static apache2-utils openssl \
                binfmt-support busybox-static python3-venv openssh-server openssh-client shellcheck \
                chromium podman buildah runc uidmap postgresql \
                qemu-system-arm qemu-utils mmdebstrap arch-test e2fsprogs kmod cpio

# ansible-builder's own venv (see its rule below); defined here because a rule's prerequisites are
# expanded when make reads the rule.
BUILDER_VENV := $(BUILD)/ansible-builder
BUILDER_PIN  := ansible-builder==3.2.0
DEMO_DIR    := $(BUILD)/demo
DEMO_PORT   ?= 5000

export ANSIBLE_COLLECTIONS_PATH := $(COLL_ROOT)
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH := false
export ANSIBLE_NOCOLOR := 1
export PATH := $(VENV)/bin:$(PATH)

.PHONY: help deps apt venv collection test test-unit test-integration test-matrix sanity lint docs \
        try demo demo-stop bench clean peers registries-table pulp vm

help:
	@echo "Without root, with Python only (a virtualenv in .venv, nothing installed on the machine):"
	@echo "make test-unit  the unit tests (tests/unit); one layer alone: .venv/bin/python -m pytest tests/unit/plugins/module_utils/_oci"
	@echo "make lint       ansible-lint, production profile"
	@echo "make docs       the HTML reference (antsibull-docs, Sphinx) into build/docs-site"
	@echo "make help       this list"
	@echo "make venv       the pinned virtualenv .venv (requirements-test.txt)"
	@echo "make collection link the checkout as build/collections/ansible_collections/archfleet/multiarch"
	@echo "make try        the registry side, changing nothing outside the clone: a registry started from the clone,"
	@echo "                per-architecture images pushed, the multi-arch tag published, inspected, audited (build/try/)"
	@echo "make clean      remove build/ and test output"
	@echo "Installing Debian packages (root or sudo) and starting services on loopback:"
	@echo "make deps       apt + venv + collection: everything the integration tests need"
	@echo "make apt        the Debian packages of APT_PACKAGES (tools/apt_install.sh)"
	@echo "make test       set up, then run every test (unit, integration, version matrix, sanity, lint, docs)"
	@echo "make test-integration  the integration tests (real registries, dockerd, binfmt_misc; pytest -m selects a part)"
	@echo "make test-matrix  unit tests and a representative set of integration tests under each ansible-core in MATRIX"
	@echo "make sanity     ansible-test sanity in a venv of its own (build/sanity-venv)"
	@echo "make peers      build the Go test partners (tools/peers.sh, cached under ARCHFLEET_CACHE)"
	@echo "make pulp       build Pulp's venv (tools/pulp_venv.sh, cached under ARCHFLEET_CACHE)"
	@echo "make vm         build the Debian 12 arm64 image the arm64 host tests boot (tools/arm64_vm.sh, cached under ARCHFLEET_CACHE)"
	@echo "make registries-table  run tests/integration/test_registries.py and write docs/registries.md's table"
	@echo "make demo       set up, start a local registry on 127.0.0.1:$(DEMO_PORT), run the demo"
	@echo "make demo-stop  stop the demo registry and dockerd, remove the emulators the demo registered"
	@echo "make bench      run every benchmark in bench/ (BENCH=name,... runs only those)"

deps: apt venv collection

apt: $(BUILD)/.apt-stamp
$(BUILD)/.apt-stamp: tools/apt_install.sh Makefile
	@mkdir -p $(BUILD)
	APT_SUDO=$(SUDO) tools/apt_install.sh $(APT_PACKAGES)
	@touch $@

venv: $(VENV)/.stamp
$(VENV)/.stamp: requirements.txt requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-test.txt
	@touch $@

collection:
	@mkdir -p $(dir $(COLL_LINK))
	@ln -sfn $(ROOT) $(COLL_LINK)

test: deps
	$(MAKE) test-unit
	$(MAKE) test-integration
	$(MAKE) test-matrix
	$(MAKE) sanity
	$(MAKE) lint
	$(MAKE) docs

test-unit: venv collection
	$(VENV)/bin/python -m pytest -q tests/unit

# The arm64 image (make vm) builds beside the tests that need neither it nor binfmt_misc (its build holds the
# binfmt_misc lock): conftest runs the tests that do last, and harness.arm64_vm waits for a build in progress.
# The build's output is in build/vm.log; a failed build fails the target after the tests.
test-integration: deps peers pulp $(BUILDER_VENV)/.stamp
	rm -f $(COMPAT_JSON) $(BUILD)/vm.status
	( $(MAKE) -s vm > $(BUILD)/vm.log 2>&1; echo $$? > $(BUILD)/vm.status ) & \
	$(VENV)/bin/python -m pytest -q -rs tests/integration; status=$$?; wait; \
	if [ "$$(cat $(BUILD)/vm.status)" != 0 ]; then echo "make vm failed (build/vm.log):"; tail -40 $(BUILD)/vm.log; exit 1; fi; \
	exit $$status
	$(VENV)/bin/python tools/registries_table.py --check --only-complete

# Pulp (pulpcore + pulp-container) for tests/integration/test_pulp.py: its venv outside the clone, in
# ${ARCHFLEET_CACHE:-/var/cache/archfleet}/pulp/<recipe hash>, built once per recipe (a second run builds
# nothing and prints the path); harness/pulp.py builds it on first use too, if this target did not run.
pulp: apt
	@PYTHON=$(PYTHON) tools/pulp_venv.sh

# The arm64 machine of tests/integration/test_arm64_host.py (harness/arm64_vm.py): Debian 12 arm64 from Debian's
# packages, booted under qemu-system-aarch64 (software emulation). Its image is built here, never in a test, and
# cached outside the clone in ${ARCHFLEET_CACHE:-/var/cache/archfleet}/vm/debian12-arm64-<recipe hash>: a second run
# builds nothing and prints the path. The build registers a qemu-aarch64 binfmt_misc entry for as long as it runs,
# holding /run/lock/archfleet-binfmt.lock, and puts the table back as found. A machine that cannot build it (exit 3:
# no root, a tool missing) carries on: the tests say why they skip. Times: docs/performance.md.
vm: apt
	@tools/arm64_vm.sh >/dev/null || { status=$$?; [ $$status = 3 ] || exit $$status; \
	  echo "make vm: carrying on without the arm64 VM image"; }

# Test partners built from Go sources (tools/peers.sh: pinned versions, cached outside the clone under
# ${ARCHFLEET_CACHE:-/var/cache/archfleet}/peers). Without a Go that can build them peers.sh says so in
# one sentence (exit 3) and make carries on: the tests that need a peer are skipped with that sentence
# (failures under ARCHFLEET_REQUIRE_PEERS=1, which .ci/run sets).
PEERS       := distribution-3 ggcr-registry crane oras regctl buildkitd buildctl buildx docker
COMPAT_JSON := $(BUILD)/registry-compat.json
peers:
	@tools/peers.sh $(PEERS) >/dev/null || { status=$$?; [ $$status = 3 ] || exit $$status; \
	  echo "make peers: carrying on without the Go test partners ($(PEERS))"; }

# docs/registries.md's table: run the suite that records what works on each real registry, then write the
# table from build/registry-compat.json (written even when a test fails: the table then says so).
registries-table: deps peers
	rm -f $(COMPAT_JSON)
	status=0; $(VENV)/bin/python -m pytest -q -rs tests/integration/test_registries.py || status=$$?; \
	  $(VENV)/bin/python tools/registries_table.py && exit $$status

# Version matrix: every ansible-core minor release that meta/runtime.yml declares (requires_ansible) and
# that runs on this Python, each in its own venv build/matrix/<minor>, pinned to its latest patch
# release. The oldest venv installs the lower bounds of requirements.txt, so those bounds are tested;
# the others the pins of requirements-test.txt. Every venv gets the test runner pinned as in
# requirements-test.txt, and `-r requirements.txt` so that a pin outside a range fails the install.
# Each venv runs the unit tests (the docs linter, the docs rendering and the changelog tests, which need antsibull-docs
# and antsibull-changelog, run once, in .venv) and MATRIX_TESTS: both registry
# modules, every filter on registered results (JMESPath string functions included), the audit playbook
# and the publish_manifests role; nothing that touches the kernel's binfmt_misc.
MATRIX          := 2.17 2.18 2.19
MATRIX_PINS_2.17 := ansible-core==2.17.14 requests==2.28.1 jmespath==1.0.1
MATRIX_PINS_2.18 := ansible-core==2.18.19
MATRIX_PINS_2.19 := ansible-core==2.19.14
MATRIX_DIR      := $(BUILD)/matrix
# The test runner and runtime libraries as requirements-test.txt pins them.
MATRIX_TEST_PINS := $(shell grep -E '^(pytest|hypothesis|cryptography|requests|jmespath)==' $(ROOT)/requirements-test.txt)
MATRIX_TESTS    := tests/integration/test_filters.py \
                   tests/integration/test_publish_manifests.py \
                   tests/integration/test_audit.py \
                   tests/integration/test_module_defaults.py \
                   tests/integration/test_image_digest.py \
                   tests/integration/test_docker_manifest_info.py::test_facts_in_every_registry_variant \
                   tests/integration/test_docker_manifest_info.py::test_config_details \
                   tests/integration/test_docker_manifest_info.py::test_check_mode_reads_the_same \
                   tests/integration/test_docker_manifest_create.py::test_publish_then_rerun_writes_nothing \
                   tests/integration/test_docker_manifest_create.py::test_check_mode_writes_nothing_and_predicts_the_digest \
                   tests/integration/test_docker_manifest_create.py::test_merge_adds_and_replaces_one_platform \
                   tests/integration/test_docker_manifest_create.py::test_batch_publishes_several_indexes_and_reruns_without_writes \
                   tests/integration/test_supply_chain.py::test_facts_through_the_tag_schema_fallback \
                   tests/integration/test_mirror.py::test_a_whole_mirror_keeps_the_digest_and_copies_referrers_once

# The pins of one venv: MATRIX_PINS_<minor>, then MATRIX_TEST_PINS for every package not pinned there.
matrix_pins = $(MATRIX_PINS_$(1)) $(filter-out $(foreach pin,$(MATRIX_PINS_$(1)),$(firstword $(subst ==, ,$(pin)))==%),$(MATRIX_TEST_PINS))

$(MATRIX_DIR)/%/.stamp: requirements.txt requirements-test.txt Makefile
	$(PYTHON) -m venv --clear $(MATRIX_DIR)/$*
	$(MATRIX_DIR)/$*/bin/pip install -q --disable-pip-version-check -r requirements.txt $(call matrix_pins,$*)
	@touch $@

test-matrix: deps $(foreach minor,$(MATRIX),$(MATRIX_DIR)/$(minor)/.stamp)
	@for minor in $(MATRIX); do \
	  start=$$(date +%s); python=$(MATRIX_DIR)/$$minor/bin/python; \
	  echo "== ansible-core $$($$python -c 'import ansible.release as r; print(r.__version__)') ($(MATRIX_DIR)/$$minor)"; \
	  $$python -m pytest -q -p no:cacheprovider tests/unit --ignore=tests/unit/test_collection_docs.py \
	    --ignore=tests/unit/test_docs_rendering.py --ignore=tests/unit/test_changelog.py; \
	  $$python -m pytest -q -p no:cacheprovider -rs $(MATRIX_TESTS); \
	  echo "== ansible-core $$minor: $$(( $$(date +%s) - start ))s"; \
	done

# ansible-builder in a venv of its own (its dependencies must not move the test venv's pins), for
# tests/integration/test_execution_environment.py: `introspect` and `create` need no container engine.
$(BUILDER_VENV)/.stamp: Makefile
	$(PYTHON) -m venv --clear $(BUILDER_VENV)
	$(BUILDER_VENV)/bin/pip install -q --disable-pip-version-check "$(BUILDER_PIN)"
	@touch $@

# ansible-test --requirements installs each sanity test's pinned tools into the venv it runs
# from: give it a venv of its own so the test venv keeps its pins.
SANITY_VENV := $(BUILD)/sanity-venv
$(SANITY_VENV)/.stamp: requirements-test.txt
	$(PYTHON) -m venv $(SANITY_VENV)
	$(SANITY_VENV)/bin/pip install -q --disable-pip-version-check "$$(grep '^ansible-core==' requirements-test.txt)"
	@touch $@

sanity: deps $(SANITY_VENV)/.stamp
	SANITY_VENV=$(SANITY_VENV) tools/sanity.sh

lint: venv collection
	cd $(ROOT) && $(VENV)/bin/ansible-lint --profile production --offline

# HTML reference of the modules, filters and roles, built offline with antsibull-docs and Sphinx into
# build/docs-site/build/html (generated, not committed). The generated conf.py gets an empty
# intersphinx mapping so that no inventory is fetched from the network; links into the Ansible docs
# then stay unresolved (Sphinx warns). Broken collection docs fail `make test` through
# tests/unit/test_collection_docs.py (antsibull-docs lint-collection-docs).
DOCS_SITE := $(BUILD)/docs-site
docs: venv collection
	rm -rf $(DOCS_SITE)
	mkdir -p -m 755 $(DOCS_SITE) $(DOCS_SITE)/rst
	$(VENV)/bin/antsibull-docs sphinx-init --use-current --fail-on-error --no-add-antsibull-docs-version \
	  --project archfleet.multiarch --title archfleet.multiarch --html-short-title archfleet.multiarch \
	  --dest-dir $(DOCS_SITE) archfleet.multiarch
	echo 'intersphinx_mapping = {}' >> $(DOCS_SITE)/conf.py
	$(VENV)/bin/antsibull-docs --config-file $(DOCS_SITE)/antsibull-docs.cfg collection --use-current \
	  --fail-on-error --dest-dir $(DOCS_SITE)/rst archfleet.multiarch
	$(VENV)/bin/sphinx-build -M html $(DOCS_SITE)/rst $(DOCS_SITE)/build -c $(DOCS_SITE) -q
	@echo "docs: $(DOCS_SITE)/build/html/index.html"

# make try: the registry side of the workflow without changing the machine. Needs Debian's docker-registry
# (nothing else: no apt run, no dockerd, no emulator, no sudo). Everything it writes is under build/try: its own
# virtualenv (requirements.txt), HOME, pip's and ansible's caches and temp files, the registry's storage and the
# reports; the registry it starts is stopped before it ends. TRY_VENV may name an existing virtualenv instead.
TRY_DIR   := $(BUILD)/try
TRY_PORT  ?= 5055
TRY_VENV  ?= $(TRY_DIR)/venv
TRY_ENV   := HOME=$(TRY_DIR)/home XDG_CACHE_HOME=$(TRY_DIR)/home/.cache ANSIBLE_HOME=$(TRY_DIR)/home/.ansible \
             ANSIBLE_LOCAL_TEMP=$(TRY_DIR)/home/.ansible/tmp PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

try: collection $(TRY_VENV)/bin/ansible-playbook
	@mkdir -p $(TRY_DIR)/home
	$(TRY_ENV) $(TRY_VENV)/bin/python tools/try_it.py --port $(TRY_PORT) --dir $(TRY_DIR)

$(TRY_VENV)/bin/ansible-playbook:
	@mkdir -p $(TRY_DIR)/home
	$(TRY_ENV) $(PYTHON) -m venv $(TRY_VENV)
	$(TRY_ENV) $(TRY_VENV)/bin/pip install -q -r requirements.txt

demo: deps
	$(VENV)/bin/python tools/demo_registry.py start --port $(DEMO_PORT) --dir $(DEMO_DIR)
	$(VENV)/bin/python tools/demo_registry.py seed --port $(DEMO_PORT)
	$(VENV)/bin/python tools/demo_dockerd.py start --dir $(DEMO_DIR) --insecure-registry 127.0.0.1:$(DEMO_PORT)
	$(VENV)/bin/python tools/demo_dockerd.py context --dir $(DEMO_DIR)
	$(VENV)/bin/python tools/demo_binfmt.py save --dir $(DEMO_DIR)
	$(VENV)/bin/ansible-playbook -i localhost, -c local playbooks/demo.yml \
	  -e demo_registry=127.0.0.1:$(DEMO_PORT) -e demo_dir=$(abspath $(DEMO_DIR))

demo-stop:
	@if [ -x $(VENV)/bin/python ]; then \
	  $(VENV)/bin/python tools/demo_dockerd.py stop --dir $(DEMO_DIR); \
	  $(VENV)/bin/python tools/demo_registry.py stop --dir $(DEMO_DIR); \
	  $(SUDO) $(VENV)/bin/python tools/demo_binfmt.py restore --dir $(DEMO_DIR); \
	 else echo "nothing to stop"; fi

bench: deps
	BENCH="$(BENCH)" $(VENV)/bin/python bench/run.py

clean:
	rm -rf $(BUILD) tests/output .pytest_cache
