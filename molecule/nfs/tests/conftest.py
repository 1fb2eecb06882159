"""Fixtures for the NFS scenario's verify step: the virtual machines over ssh (the ports that
molecule.yml forwards from 127.0.0.1, the key next to the cached image), and a helper that runs
site.yml against molecule's inventory."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
import testinfra
import yaml

REPO = Path(__file__).resolve().parents[3]
SCENARIO = Path(__file__).resolve().parents[1]
VM_CACHE = Path(os.environ.get("MULTIJHUB_VM_CACHE") or "/var/cache/multijhub/nfs-vm")
PLATFORMS = {p["name"]: p for p in yaml.safe_load((SCENARIO / "molecule.yml").read_text())["platforms"]}
# The tags of site.yml's shared-home tasks, as the scenario's converge runs them.
SITE_TAGS = yaml.safe_load((SCENARIO / "molecule.yml").read_text())["provisioner"]["options"]["tags"]

SSH_OPTIONS = (
    "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
    "-o ConnectTimeout=10 -o ControlMaster=auto -o ControlPersist=300s "
    "-o ControlPath=/tmp/multijhub-nfs-%C"
)


def ssh_argv(name: str) -> list[str]:
    """The ssh command line that reaches root on VM ``name`` (append the remote command)."""
    key = VM_CACHE / "ssh" / "id_ed25519"
    port = str(PLATFORMS[name]["ssh_port"])
    return ["ssh", *shlex.split(SSH_OPTIONS), "-i", str(key), "-p", port, "root@127.0.0.1"]


def _host(name: str) -> testinfra.host.Host:
    port = PLATFORMS[name]["ssh_port"]
    return testinfra.get_host(
        f"ssh://root@127.0.0.1:{port}",
        ssh_identity_file=str(VM_CACHE / "ssh" / "id_ed25519"),
        ssh_extra_args=SSH_OPTIONS,
    )


@pytest.fixture(scope="session")
def home() -> testinfra.host.Host:
    return _host("nfs-home")


@pytest.fixture(scope="session")
def hub() -> testinfra.host.Host:
    return _host("nfs-hub")


@pytest.fixture(scope="session")
def front() -> testinfra.host.Host:
    return _host("nfs-front")


@pytest.fixture(scope="session")
def clients(hub: testinfra.host.Host, front: testinfra.host.Host) -> list[testinfra.host.Host]:
    return [hub, front]


def ansible_playbook(playbook: str, *args: str, timeout: int = 1200) -> subprocess.CompletedProcess[str]:
    """ansible-playbook from the repository against molecule's inventory; output in stdout."""
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
    if not inventory:
        pytest.fail(
            "MOLECULE_INVENTORY_FILE is not set: run the verify step through molecule (make test-nfs)"
        )
    env = dict(os.environ)
    env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO / "collections")
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.default"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["ANSIBLE_NOCOLOR"] = "1"
    return subprocess.run(
        ["ansible-playbook", "-i", inventory, str(REPO / playbook), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


def recap(output: str) -> dict[str, dict[str, int]]:
    """Parse PLAY RECAP lines into {host: {ok: n, changed: n, ...}} (up to the blank line after them:
    a callback such as profile_tasks may print more lines with colons)."""
    hosts: dict[str, dict[str, int]] = {}
    for line in output.split("PLAY RECAP", 1)[-1].split("\n\n", 1)[0].splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[1] == ":":
            hosts[parts[0]] = {k: int(v) for k, v in (p.split("=") for p in parts[2:] if "=" in p)}
    return hosts
