"""Unit tests of the module in the style of ansible-test units (exit_json/fail_json patched)."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.multijhub.cluster.plugins.modules import jupyter_servers
from module_harness import AnsibleExitJson, AnsibleFailJson
from multijhub_servers import Server, shared_tmpdir, start_server, stop

ROOT = Path(__file__).resolve().parents[3]


def run(args: dict[str, Any], *, check: bool = False, diff: bool = False) -> dict[str, Any]:
    args = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
    with patch_module_args(args), pytest.raises(AnsibleExitJson) as info:
        jupyter_servers.main()
    return info.value.args[0]


def fail(args: dict[str, Any]) -> dict[str, Any]:
    with patch_module_args(args), pytest.raises(AnsibleFailJson) as info:
        jupyter_servers.main()
    return info.value.args[0]


def test_report_with_a_real_server(root_server: Server) -> None:
    result = run({"user": "root", "runtime_template": str(root_server.runtime_dir)}, check=True)
    assert result["changed"] is False
    assert [s["pid"] for s in result["servers"]] == [root_server.pid]
    fact = result["ansible_facts"]["multijhub_jupyter_servers"]
    assert fact["servers"] == result["servers"]
    assert fact["user"] == "root" and fact["mem_available"] > 0
    json.dumps(result)


def test_all_users(root_server: Server, nobody_server: Server) -> None:
    result = run({"all_users": True})
    owners = {p["pid"]: p["user"] for p in result["processes"]}
    assert owners[root_server.pid] == "root"
    assert owners[nobody_server.pid] == "nobody"
    assert result["ansible_facts"]["multijhub_node_servers"]["users"] == result["users"]


@pytest.mark.parametrize(
    "bad", ["", "../etc", "a/b", "*", "?", "[a]", "a b", "a\x00", "x" * 40, "..", ".hidden", "UPPER", "é"]
)
def test_hostile_user_fails_clearly(bad: str) -> None:
    result = fail({"user": bad})
    assert result["msg"].startswith("invalid user name: ")


def test_a_user_without_an_account_here_is_an_answer() -> None:
    result = run({"user": "multijhub_nosuchuser"})
    assert result["changed"] is False and not result.get("failed")
    assert result["user_exists"] is False and result["evidence"] == [] and result["runtime_dir"] is None
    fact = result["ansible_facts"]["multijhub_jupyter_servers"]
    assert fact["user"] == "multijhub_nosuchuser" and fact["mem_available"] > 0
    assert run({"user": "root"})["user_exists"] is True


def test_unknown_user_and_bad_combinations() -> None:
    # Pruning needs the account (its home): there it stays an error.
    assert fail({"user": "multijhub_nosuchuser", "prune": ["jpserver-1.json"]})["msg"] == (
        "no such user: 'multijhub_nosuchuser'"
    )
    assert "required" in fail({})["msg"]
    assert "cannot be combined" in fail({"user": "root", "all_users": True})["msg"]
    assert "invalid user name" in fail({"user": "../etc", "prune": ["jpserver-1.json"]})["msg"]


def test_unlistable_runtime_dir(shared_dir: Path) -> None:
    (shared_dir / "f").write_text("")
    assert "not a directory" in fail({"user": "root", "runtime_template": str(shared_dir / "f")})["msg"]


def test_prune_check_diff_then_real_then_idempotent() -> None:
    base = shared_tmpdir()
    try:
        server = start_server(base)
        stop(server)  # SIGKILL leaves the file behind
        name = server.file.name
        other = server.runtime_dir / "nbserver-77.json"
        other.write_text("{}")
        args = {"user": "root", "runtime_template": str(server.runtime_dir), "prune": [name]}

        checked = run(args, check=True, diff=True)
        assert (checked["changed"], checked["removed"]) == (True, [name])
        assert server.file.exists()
        assert checked["diff"]["before"] == f"{name}\nnbserver-77.json\n"
        assert checked["diff"]["after"] == "nbserver-77.json\n"

        done = run(args)
        assert (done["changed"], done["removed"]) == (True, [name])
        assert not server.file.exists() and other.exists()
        assert (server.runtime_dir / f"jpserver-{server.pid}-open.html").exists()  # not a prune target

        again = run(args)
        assert (again["changed"], again["removed"], again["absent"]) == (False, [], [name])
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("bad", ["jpserver-1-open.html", "../jpserver-1.json", "jupyter_cookie_secret", "x"])
def test_prune_refuses_other_names(bad: str, shared_dir: Path) -> None:
    (shared_dir / "jupyter_cookie_secret").write_text("s")
    result = fail({"user": "root", "runtime_template": str(shared_dir), "prune": ["jpserver-1.json", bad]})
    assert "refused" in result["msg"] and repr(bad) in result["msg"]
    assert (shared_dir / "jupyter_cookie_secret").exists()


def test_through_ansible_for_real() -> None:
    """AnsiballZ must package the core's relative imports: run the module through ansible."""
    env = dict(os.environ, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json")
    proc = subprocess.run(
        [
            str(ROOT / ".venv/bin/ansible"),
            "localhost",
            "-m",
            "multijhub.cluster.jupyter_servers",
            "-a",
            "user=root",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert result["user"] == "root" and result["uid"] == 0
    assert (
        result["ansible_facts"]["multijhub_jupyter_servers"]["runtime_dir"]
        == "/root/.local/share/jupyter/runtime"
    )
    bad = subprocess.run(
        [
            str(ROOT / ".venv/bin/ansible"),
            "localhost",
            "-m",
            "multijhub.cluster.jupyter_servers",
            "-a",
            "user=../etc",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert bad.returncode == 2
    assert "invalid user name" in bad.stdout


class _FakeHubApi:
    """A stand-in for a hub's REST API on loopback (the cluster tests use the real JupyterHub)."""

    TOKEN = "0123456789abcdef"

    def __init__(self, servers: dict[str, Any]) -> None:
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api.paths.append(self.path)
                if self.headers.get("Authorization") != f"token {api.TOKEN}":
                    self.send_response(403)
                    self.end_headers()
                    return
                if self.path != "/prefix/hub/api/users/root":
                    self.send_response(404)
                    self.end_headers()
                    return
                body = json.dumps({"name": "root", "servers": servers}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.paths: list[str] = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/prefix/hub/api"

    def config(self, tmp_path: Path, token: str | None = None) -> Path:
        (tmp_path / "token").write_text((token or self.TOKEN) + "\n")
        path = tmp_path / "api.json"
        path.write_text(json.dumps({"api_url": self.url, "token_file": str(tmp_path / "token")}))
        return path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_hub_api_is_asked_when_configured(tmp_path: Path) -> None:
    api = _FakeHubApi({"": {"ready": True, "pending": None, "url": "/prefix/user/root/"}})
    try:
        empty = tmp_path / "runtime"
        empty.mkdir()
        result = run({"user": "root", "runtime_template": str(empty), "hub_api": str(api.config(tmp_path))})
        assert result["hub_server"]["ready"] is True and "hub_error" not in result
        assert api.paths == ["/prefix/hub/api/users/root"]
        assert isinstance(result["processes"], list)  # the user's single-user servers, by UID

        refused = run(
            {"user": "root", "runtime_template": str(empty), "hub_api": str(api.config(tmp_path, "bad"))}
        )
        assert "hub_server" not in refused and "403" in refused["hub_error"]
        missing = run(
            {"user": "root", "runtime_template": str(empty), "hub_api": str(tmp_path / "none.json")}
        )
        assert "is missing" in missing["hub_error"]
        # The token never shows in the result.
        assert api.TOKEN not in json.dumps([result, refused, missing])
    finally:
        api.close()
