# multijhub: the two set-up commands.
#   make demo     bring up the four-host test cluster and deploy multijhub on it
#   make test     lint, unit tests, and the molecule scenario (what CI runs)
#   make destroy  tear the test cluster down
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
CACHE ?= $(CURDIR)/.cache

export CONTAINERS_CONF ?= $(CURDIR)/molecule/host/containers.conf
export MULTIJHUB_CLUSTER_DIR ?= $(CACHE)/cluster
export MULTIJHUB_CACHE_DIR ?= $(CACHE)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/collections
# Under make, a test whose prerequisites are missing fails instead of skipping.
export MULTIJHUB_REQUIRE_ALL_TESTS := 1
export PATH := $(BIN):$(PATH)

SCENARIO ?= default
CLUSTER_NAMES := home1 hub1 hub2 frontdoor1 outsider

.PHONY: help venv image wheels ssh-key network sanity bench-placement bench-frontdoor bench-deploy lint unit docs docs-check molecule test demo status destroy clean-leftovers

help:
	@echo "make demo      bring up the test cluster and deploy multijhub on it"
	@echo "make test      lint + unit tests + molecule (what CI runs)"
	@echo "make destroy   tear the test cluster down"

$(VENV)/.installed: requirements-dev.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

image:
	molecule/host/prepare-host.sh

IMAGE ?= $(or $(MULTIJHUB_IMAGE),localhost/multijhub-debian12:latest)

wheels: venv image
	molecule/host/wheelhouse.sh $(CACHE)/wheels \
	  "$$(podman run --rm $(IMAGE) python3 -c 'import platform; print(platform.python_version())')"

lint: venv
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint --profile production
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: venv image
	$(BIN)/pytest tests/unit

# ansible-test sanity on the plugins (offline, no containers: see tests/sanity.sh).
sanity: venv
	tests/sanity.sh

docs: venv
	$(PY) tests/docs/render_role_docs.py --write README.md

docs-check: venv
	$(PY) tests/docs/render_role_docs.py --check README.md

# Remove what an earlier, interrupted run left behind under the cluster's own names.
# The key Ansible uses to reach the test cluster over ssh.
ssh-key:
	@mkdir -p $(CACHE)/ssh
	@test -f $(CACHE)/ssh/id_ed25519 || ssh-keygen -q -t ed25519 -N '' -C multijhub-tests -f $(CACHE)/ssh/id_ed25519

clean-leftovers:
	-podman rm -f -t 0 $(CLUSTER_NAMES) >/dev/null 2>&1
	-podman network rm -f multijhub >/dev/null 2>&1
	rm -rf $(HOME)/.cache/molecule/$(notdir $(CURDIR))/$(SCENARIO) $(HOME)/.ansible/tmp/molecule.*.$(SCENARIO)
	rm -rf $(MULTIJHUB_CLUSTER_DIR)
	mkdir -p $(MULTIJHUB_CLUSTER_DIR)/home $(MULTIJHUB_CACHE_DIR)/wheels

# The cluster's network, with the fixed subnet the test inventory's addresses live in.
network: clean-leftovers
	podman network create --subnet 10.89.77.0/24 multijhub >/dev/null

molecule: venv image wheels ssh-key network
	$(BIN)/molecule test -s $(SCENARIO)

test: lint sanity docs-check unit molecule

demo: venv image wheels ssh-key network
	$(BIN)/molecule converge -s $(SCENARIO)
	@$(MAKE) --no-print-directory status

status: venv
	@$(BIN)/molecule list -s $(SCENARIO)
	@echo "Front door: http://127.0.0.1:$${MULTIJHUB_FRONTDOOR_PORT:-18080}/  (users juser1/juser2, see molecule/default/molecule.yml)"

destroy: venv
	-$(BIN)/molecule destroy -s $(SCENARIO)
	$(MAKE) --no-print-directory clean-leftovers

# Single molecule steps on a running cluster, e.g. make molecule-verify / molecule-idempotence.
molecule-%: venv
	$(BIN)/molecule $* -s $(SCENARIO)

# Benchmarks: numbers printed against a baseline of the same run (never asserted in tests).
bench-placement: venv
	$(PY) bench/placement/simulate.py --seeds 11 --nodes 4 --node-mem-gib 64 --out bench/results/placement

bench-frontdoor: venv
	$(PY) bench/frontdoor/resolve_bench.py

# On a freshly created test cluster: first site.yml, a second run (no change), where.yml, each
# against `ansible all -m ping` measured in the same run.
bench-deploy: venv image wheels ssh-key network
	$(BIN)/molecule create -s $(SCENARIO)
	$(BIN)/molecule prepare -s $(SCENARIO)
	$(PY) bench/deploy/deploy_bench.py --first --repeat 11 \
	  --inventory $$(ls -d $(HOME)/.ansible/tmp/molecule.*.$(SCENARIO)/inventory/ansible_inventory.yml | head -n1)

# --- The NFS scenario (molecule/nfs): the kernel NFS server and real NFS mounts in qemu (TCG)
# virtual machines. The base image is kept in MULTIJHUB_VM_CACHE and rebuilt when its recipe
# (molecule/host/nfs-vm-image.sh) changes. make test runs it after the container scenario.
export MULTIJHUB_VM_CACHE ?= /var/cache/multijhub/nfs-vm
.PHONY: nfs-vm-image test-nfs destroy-nfs

nfs-vm-image:
	molecule/host/nfs-vm-image.sh

test-nfs: venv nfs-vm-image
	$(BIN)/molecule test -s nfs

destroy-nfs: venv
	-$(BIN)/molecule destroy -s nfs

test: test-nfs
