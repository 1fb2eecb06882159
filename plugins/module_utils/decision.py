"""The decision over every node's answer: running, several, not running, or unknown."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .usernames import validate_username

__all__ = ["STATES", "Decision", "NodeAnswer", "decide", "hub_says_running"]

STATES = ("running", "several", "not_running", "unknown")


@dataclass
class NodeAnswer:
    """One node's answer: its report, or the error that kept it from answering."""

    node: str
    ok: bool
    report: dict[str, Any] | None = None
    error: str | None = None
    # The hub REST API's servers[""] for the user when the hub answered, else None.
    hub_server: dict[str, Any] | None = None


@dataclass
class Decision:
    """Where the user's server is, with the evidence behind it."""

    user: str
    state: str  # "running" | "several" | "not_running" | "unknown"
    nodes: list[str] = field(default_factory=list)
    servers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    stale: list[str] = field(default_factory=list)
    unanswered: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return asdict(self)


def hub_says_running(hub_server: dict[str, Any] | None) -> bool:
    """True when the hub API reports the server ready or pending."""
    if not isinstance(hub_server, dict):
        return False
    return bool(hub_server.get("ready")) or bool(hub_server.get("pending"))


def _usable(answer: NodeAnswer, user: str) -> tuple[bool, str | None]:
    """Whether the answer counts as answered, and why not."""
    if not answer.ok:
        return False, answer.error or "did not answer"
    report = answer.report
    if report is not None and report.get("user") != user:
        return False, f"answered for user {report.get('user')!r}, not {user!r}"
    return True, None


def _running_on(answer: NodeAnswer) -> tuple[list[dict[str, Any]], set[str], set[str]]:
    """(servers running on the node, files it saw, files it claims as running)."""
    running: list[dict[str, Any]] = []
    seen: set[str] = set()
    claimed: set[str] = set()
    for ev in (answer.report or {}).get("evidence", []):
        seen.add(ev["file"])
        if ev.get("verdict") == "running":
            claimed.add(ev["file"])
            running.append(dict(ev, source="runtime"))
    if hub_says_running(answer.hub_server):
        hub = answer.hub_server or {}
        keys = ("ready", "pending", "url", "started", "last_activity")
        running.append({"source": "hub", **{k: hub.get(k) for k in keys}})
    return running, seen, claimed


def decide(user: str, answers: list[NodeAnswer]) -> Decision:
    """Combine every node's answer for ``user``.

    A node runs the server when its report has running evidence or its hub says the server
    is ready/pending. Several nodes -> "several"; none, with a node unanswered -> "unknown"
    (never "not_running"). Stale files (claimed by no node) are listed only when every node
    answered with a report and no hub claims a server that has no runtime evidence.
    """
    user = validate_username(user, pattern=None)
    servers: dict[str, list[dict[str, Any]]] = {}
    unanswered: dict[str, str] = {}
    seen_files: set[str] = set()
    claimed_files: set[str] = set()
    stale_allowed = True
    for answer in answers:
        usable, reason = _usable(answer, user)
        if not usable:
            unanswered[answer.node] = reason or "did not answer"
            stale_allowed = False
            continue
        running, seen, claimed = _running_on(answer)
        seen_files |= seen
        claimed_files |= claimed
        if answer.report is None or (running and not claimed):
            stale_allowed = False  # no listing, or a hub claim without runtime evidence
        if running:
            servers[answer.node] = running
    nodes = sorted(servers)
    if len(nodes) > 1:
        state = "several"
    elif nodes:
        state = "running"
    elif unanswered:
        state = "unknown"
    else:
        state = "not_running"
    stale = sorted(seen_files - claimed_files) if stale_allowed else []
    return Decision(user, state, nodes, {n: servers[n] for n in nodes}, stale, unanswered)
