"""A decision in words for operators: the one line ``where.yml`` ends with, and its details."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .acl import GRANT_REPAIR

__all__ = ["answer_text", "details_lines", "server_url", "uptime_text"]

GiB = 1024**3


def uptime_text(seconds: float) -> str:
    """``40s``, ``12m``, ``3h05m`` or ``2d4h``."""
    s = max(0, int(seconds))
    if s >= 86400:
        return f"{s // 86400}d{(s % 86400) // 3600}h"
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m"
    return f"{s}s"


def server_url(base_url: str, user: str) -> str:
    """The user's server under a hub's public URL."""
    return f"{base_url.rstrip('/')}/user/{user}/"


def _evidence(servers: Sequence[Mapping[str, Any]]) -> str:
    for source, note in (("runtime", ""), ("proc", ", no runtime file")):
        found = [s for s in servers if s.get("source") == source]
        if found:
            pids = ", pid ".join(str(s.get("pid")) for s in found)
            return f"pid {pids}, up {uptime_text(float(found[0].get('uptime') or 0))}{note}"
    hub = next((s for s in servers if s.get("source") == "hub"), {})
    return "hub API: " + ("ready" if hub.get("ready") else "pending")


def _found(decision: Mapping[str, Any], base_urls: Mapping[str, str]) -> list[str]:
    user = decision["user"]
    return [
        f"{node} ({_evidence(decision['servers'].get(node, []))}) -> "
        f"{server_url(base_urls.get(node, f'http://{node}:8000'), user)}"
        for node in decision["nodes"]
    ]


def answer_text(decision: Mapping[str, Any], base_urls: Mapping[str, str], hubs: Sequence[str]) -> str:
    """One line: where the user's server runs, where a new one would go, or why it is unknown."""
    user, state = decision["user"], decision["state"]
    if state == "running":
        return f"{user}: running on {_found(decision, base_urls)[0]}"
    if state == "several":
        return f"{user}: SEVERAL servers running: {'; '.join(_found(decision, base_urls))}"
    if state == "not_running":
        placement = decision.get("placement")
        if not placement:
            return f"{user}: no running server; no hub can take a new one (all drained)"
        gib = int(placement["mem_available"]) / GiB
        return (
            f"{user}: no running server; a new one would go to {placement['node']} ({gib:.1f} GiB available)"
        )
    if state == "no_such_user":
        return f"no such user {user} on {', '.join(decision['no_account'])}"
    unanswered = decision["unanswered"]
    answered = [hub for hub in hubs if hub not in unanswered]
    found = f"no server found on {', '.join(answered)}" if answered else "no hub answered"
    return f"{user}: UNKNOWN - {', '.join(sorted(unanswered))} did not answer; {found}"


def details_lines(decision: Mapping[str, Any], prune_command: str) -> list[str]:
    """Why hubs did not answer, and the stale runtime files with the command that prunes them."""
    lines = [f"{hub} did not answer: {reason}" for hub, reason in sorted(decision["unanswered"].items())]
    for node, servers in sorted(decision["servers"].items()):
        for server in servers:
            after = float(server.get("started_after_file") or 0)
            if server.get("source") == "runtime" and after > 0:
                lines.append(
                    f"{node}: process {server.get('pid')} started {after:.0f} s after its runtime file was"
                    f" written: the clocks of {node} and the host holding the homes differ (check NTP);"
                    " counted as running"
                )
    for node, problem in sorted((decision.get("problems") or {}).items()):
        if problem.get("grant_error"):
            lines.append(
                f"{node}: broken listing grant: {problem['grant_error']}, so the front door's probe cannot"
                f" see the runtime files (it still finds the server by its processes and the hub API);"
                f" repair: {GRANT_REPAIR}"
            )
        elif problem.get("runtime_error"):
            lines.append(f"{node}: {problem['runtime_error']}; its processes and hub API were asked instead")
        if problem.get("hub_error"):
            lines.append(
                f"{node}: its hub API gave no answer ({problem['hub_error']});"
                " the runtime files and /proc did"
            )
    missing = decision.get("no_account") or []
    if missing and decision["state"] != "no_such_user":
        lines.append(
            f"{decision['user']} has no account on {', '.join(missing)}: no server can start there"
            " (the same users must exist on every hub; site.yml's preflight checks it)"
        )
    if decision["state"] == "unknown":
        silent = ", ".join(sorted(decision["unanswered"]))
        lines.append(
            f"the front door waits for {silent} only for the users who may have a server there (their"
            " recent nodes); a hub down for good: ansible-playbook drain.yml -e node=HUB -e down=true"
            " (its servers are then taken as lost and their users get new ones elsewhere)"
        )
    if decision["stale"]:
        lines.append(f"stale runtime files (no hub runs them): {', '.join(decision['stale'])}")
        lines.append(f"remove them with: {prune_command}")
    return lines
