# multijhub: the two set-up commands.
#   make demo     bring up the four-host test cluster and deploy multijhub on it (demo settings)
#   make test     lint, unit tests, and the molecule scenario (what CI runs; test settings)
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

# Both scenarios run the cluster of molecule/cluster.yml: default (make test) with short timeouts,
# demo (make demo) with what a person would try. The same container names: one cluster at a time.
SCENARIO ?= default
DEMO_SCENARIO := demo
# $(call molecule,COMMAND,SCENARIO): molecule over the shared cluster file, with its working files
# (state, generated inventory) at a known path of this checkout rather than a shared temporary one.
molecule = MOLECULE_EPHEMERAL_DIRECTORY=$(CACHE)/molecule/$(2) \
  $(BIN)/molecule -c $(CURDIR)/molecule/cluster.yml $(1) -s $(2)
CLUSTER_NAMES := home1 hub1 hub2 frontdoor1 outsider
# A stable inventory of the demo cluster for the operator commands (where.yml, drain.yml).
DEMO_INVENTORY := $(CACHE)/demo/inventory.yml

.PHONY: help venv image wheels demo-inventory ssh-key network sanity bench-placement bench-frontdoor bench-deploy bench-proxy lint unit docs docs-check molecule test demo status destroy clean-leftovers

help:
	@echo "make demo      bring up the test cluster and deploy multijhub on it"
	@echo "make test      lint + unit tests + molecule (what CI runs)"
	@echo "make destroy   tear the test cluster down"

$(VENV)/.installed: requirements-dev.txt pyproject.toml
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
	rm -rf $(CACHE)/molecule
	rm -rf $(MULTIJHUB_CLUSTER_DIR) $(dir $(DEMO_INVENTORY))
	mkdir -p $(MULTIJHUB_CLUSTER_DIR)/home $(MULTIJHUB_CACHE_DIR)/wheels

# The cluster's network, with the fixed subnet the test inventory's addresses live in.
network: clean-leftovers
	podman network create --subnet 10.89.77.0/24 multijhub >/dev/null

molecule: venv image wheels ssh-key network
	$(call molecule,test,$(SCENARIO))

test: lint sanity docs-check unit molecule

demo: venv image wheels ssh-key network
	$(call molecule,converge,$(DEMO_SCENARIO))
	@$(MAKE) --no-print-directory demo-inventory status

# The demo's inventory as one self-contained file for the operator commands (molecule's own
# inventory is a directory of generated files).
demo-inventory: venv
	@mkdir -p $(dir $(DEMO_INVENTORY))
	@$(BIN)/ansible-inventory --list --yaml --export --output $(DEMO_INVENTORY) \
	  -i $(CACHE)/molecule/$(DEMO_SCENARIO)/inventory/ansible_inventory.yml

status: venv
	@$(call molecule,list,$(DEMO_SCENARIO))
	@echo
	@echo "The cluster's one address: https://127.0.0.1:$${MULTIJHUB_PUBLIC_PORT:-18443}/ (self-signed certificate)"
	@echo "Users (test passwords, molecule/cluster.yml): juser1 / juser1-Test-pw, juser2 / juser2-Test-pw,"
	@echo "  jadmin / jadmin-Test-pw (also the front door's admin: /admin)"
	@echo "Operator commands, from this directory:"
	@echo "  $(BIN)/ansible-playbook -i $(DEMO_INVENTORY) where.yml -e user=juser1"
	@echo "  $(BIN)/ansible-playbook -i $(DEMO_INVENTORY) where.yml -e node=hub1"
	@echo "  $(BIN)/ansible-playbook -i $(DEMO_INVENTORY) drain.yml -e node=hub1"
	@echo "  $(BIN)/ansible-playbook -i $(DEMO_INVENTORY) drain.yml -e node=hub1 -e undrain=true"
	@echo "Tear it down: make destroy"

destroy: venv
	-$(call molecule,destroy,$(DEMO_SCENARIO))
	-$(call molecule,destroy,$(SCENARIO))
	$(MAKE) --no-print-directory clean-leftovers

# Single molecule steps on a running cluster, e.g. make molecule-verify / molecule-idempotence.
molecule-%: venv
	$(call molecule,$*,$(SCENARIO))

# Benchmarks: numbers printed against a baseline of the same run (never asserted in tests).
bench-placement: venv
	$(PY) bench/placement/simulate.py --seeds 11 --nodes 4 --node-mem-gib 64 --out bench/results/placement

bench-frontdoor: venv
	$(PY) bench/frontdoor/resolve_bench.py

# On the running test cluster (make demo, or make molecule-converge): a user's server through the
# front door's nginx against directly to the hub, both measured from the front door in one run.
bench-proxy: venv
	$(PY) bench/proxy/proxy_bench.py

# On a freshly created test cluster: first site.yml, a second run (no change), where.yml, each
# against `ansible all -m ping` measured in the same run.
bench-deploy: venv image wheels ssh-key network
	$(call molecule,create,$(SCENARIO))
	$(call molecule,prepare,$(SCENARIO))
	$(PY) bench/deploy/deploy_bench.py --first --repeat 11 \
	  --inventory $(CACHE)/molecule/$(SCENARIO)/inventory/ansible_inventory.yml

# --- The NFS scenario (molecule/nfs): the kernel NFS server and real NFS mounts in qemu (TCG)
# virtual machines. The base image is kept in MULTIJHUB_VM_CACHE and rebuilt when its recipe
# (molecule/host/nfs-vm-image.sh) changes. make test runs it after the container scenario.
export MULTIJHUB_VM_CACHE ?= /var/cache/multijhub/nfs-vm
.PHONY: nfs-vm-image test-nfs destroy-nfs

nfs-vm-image:
	molecule/host/nfs-vm-image.sh

# Not the container cluster: no molecule/cluster.yml base here.
nfs_molecule = MOLECULE_EPHEMERAL_DIRECTORY=$(CACHE)/molecule/nfs $(BIN)/molecule $(1) -s nfs

test-nfs: venv nfs-vm-image
	$(call nfs_molecule,test)

destroy-nfs: venv
	-$(call nfs_molecule,destroy)

test: test-nfs
