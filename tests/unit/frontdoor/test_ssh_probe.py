"""The ssh probe client: its argument vector, its parsing, a real subprocess."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from frontdoor_env import FakeProbe

from multijhub.frontdoor.config import SshConfig
from multijhub.frontdoor.probe import ProbeError, RunResult, SshProbe, run_command

SSH = SshConfig(
    user="multijhub-probe",
    key_file="/etc/multijhub-frontdoor/probe_key",
    known_hosts_file="/etc/multijhub-frontdoor/known_hosts",
    control_dir="/run/multijhub-frontdoor/ssh",
    control_persist="10m",
    channels=0,  # one ssh command per request; the sessions are in test_ssh_session.py
)


def test_argv_pins_host_keys_and_shares_connections():
    argv = SshProbe(SSH).argv("hub1", "juser1")
    assert argv[0] == "ssh"
    assert argv[-3:] == ["--", "hub1", "juser1"]
    probe = SshProbe(SSH)
    path = probe.control_path("hub1")
    assert path.startswith("/run/multijhub-frontdoor/ssh/") and path != probe.control_path("hub2")
    opts = [argv[i + 1] for i, a in enumerate(argv) if a == "-o"]
    # The probe never becomes a master itself (a request's deadline would kill it).
    for expected in (
        "BatchMode=yes",
        "ControlMaster=no",
        f"ControlPath={path}",
        "UserKnownHostsFile=/etc/multijhub-frontdoor/known_hosts",
        "StrictHostKeyChecking=yes",
    ):
        assert expected in opts
    assert not any(o.startswith("ControlPersist") for o in opts)
    assert argv[argv.index("-i") + 1] == "/etc/multijhub-frontdoor/probe_key"
    assert argv[argv.index("-l") + 1] == "multijhub-probe"
    master = probe.master_argv("hub1")
    assert master[:2] == ["ssh", "-N"] and master[-2:] == ["--", "hub1"]
    master_opts = [master[i + 1] for i, a in enumerate(master) if a == "-o"]
    assert "ControlMaster=auto" in master_opts and "ControlPersist=10m" in master_opts
    assert master_opts == [o for o in opts if o != "ControlMaster=no"][:1] + [
        "ControlMaster=auto",
        "ControlPersist=10m",
    ] + [o for o in opts if o not in ("BatchMode=yes", "ControlMaster=no")]


def test_report_is_parsed():
    fake = FakeProbe()
    report = SshProbe(SSH, runner=fake).report("hub1", "juser1", 1.0)
    assert report["user"] == "juser1"
    assert fake.calls[0][-1] == "juser1"


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (RunResult(255, b"", b"Host key verification failed.\n"), "Host key verification failed"),
        (RunResult(2, b'{"error": "no such user"}\n', b""), "no such user"),
        (RunResult(1, b'{"error": "runtime dir unreadable"}\n', b""), "runtime dir unreadable"),
        (RunResult(0, b"Welcome to hub1\n", b""), "without JSON"),
        (RunResult(0, b"[1, 2]", b""), "unexpected document"),
        (RunResult(0, b'{"user": "juser2", "mem_available": 1, "mem_total": 2}', b""), "another user"),
        (RunResult(0, b'{"user": "juser1", "mem_total": 2}', b""), "mem_available"),
        (
            RunResult(0, b'{"user": "juser1", "mem_available": 1, "mem_total": 2, "evidence": [1]}', b""),
            "malformed evidence",
        ),
        (RunResult(0, b"\xff\xfe", b""), "without JSON"),
    ],
)
def test_bad_answers_raise(result, message):
    probe = SshProbe(SSH, runner=lambda argv, timeout: result)
    with pytest.raises(ProbeError, match=message):
        probe.report("hub1", "juser1", 1.0)


def test_run_command_times_out():
    with pytest.raises(ProbeError, match="timed out"):
        run_command(["sleep", "5"], 0.2)


def test_run_command_missing_binary():
    with pytest.raises(ProbeError, match="cannot run ssh"):
        run_command(["/nonexistent/ssh"], 1.0)


def test_real_subprocess_with_a_fake_ssh(tmp_path):
    """A stand-in ``ssh`` binary proves the argument vector arrives unchanged, with no shell."""
    fake_ssh = tmp_path / "ssh"
    fake_ssh.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import json, sys
            user = sys.argv[-1]
            print(json.dumps({{"user": user, "argv": sys.argv[1:], "mem_available": 1,
                              "mem_total": 2, "evidence": []}}))
            """
        )
    )
    fake_ssh.chmod(0o755)
    settings = SshConfig(**{**SSH.__dict__, "binary": str(fake_ssh)})
    probe = SshProbe(settings)
    report = probe.report("hub1", "juser1", 5.0)
    assert report["argv"] == probe.argv("hub1", "juser1")[1:]
    assert json.dumps(report)
