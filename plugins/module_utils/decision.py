"""The decision over every node's answer: running, several, not running, or unknown."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .usernames import validate_username

__all__ = [
    "SILENT_DOWN",
    "SILENT_NOT_RECENT",
    "STATES",
    "Decision",
    "NodeAnswer",
    "NodeHistory",
    "combine",
    "decide",
    "hub_says_running",
    "report_says_running",
    "settle_silent",
    "silent_node_may_hold",
]

STATES = ("running", "several", "not_running", "no_such_user", "unknown")


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
    state: str  # "running" | "several" | "not_running" | "no_such_user" | "unknown"
    nodes: list[str] = field(default_factory=list)
    servers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    stale: list[str] = field(default_factory=list)
    unanswered: dict[str, str] = field(default_factory=dict)
    # Nodes that answered that the user has no account there (no server can run there).
    no_account: list[str] = field(default_factory=list)
    # Per node, what one of its sources could not say although the node answered
    # (``runtime_error``: the runtime directory could not be listed; ``hub_error``: the hub API;
    # ``grant_error``: the service group, i.e. the front door's probe, cannot list it).
    problems: dict[str, dict[str, str]] = field(default_factory=dict)
    # Silent nodes taken as holding no server of the user (``settle_silent``), with the reason:
    # SILENT_NOT_RECENT or SILENT_DOWN. Empty unless a history was given.
    released: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return asdict(self)


def hub_says_running(hub_server: dict[str, Any] | None) -> bool:
    """True when the hub API reports the server ready or pending."""
    if not isinstance(hub_server, dict):
        return False
    return bool(hub_server.get("ready")) or bool(hub_server.get("pending"))


def report_says_running(report: dict[str, Any] | None) -> bool:
    """True when a node's report shows a server of the user: running runtime evidence, or one of
    the user's single-user processes found by UID."""
    if not isinstance(report, dict):
        return False
    return any(ev.get("verdict") == "running" for ev in report.get("evidence", [])) or bool(
        report.get("processes")
    )


def combine(
    node: str, hub: tuple[bool, Any, str | None], probe: tuple[bool, Any, str | None]
) -> tuple[NodeAnswer, bool]:
    """One node's answer from its two sources, and whether both answered.

    ``hub`` and ``probe`` are (answered, value, error): the hub API's ``servers[""]`` (or None) and
    the node's report. A positive answer from either source is enough to say the server runs there
    (the hub API is the authority for hub-spawned servers, the node's /proc for the rest); "not
    running here" needs both sources.
    """
    hub_ok, hub_server, hub_err = hub
    probe_ok, report, probe_err = probe
    both = hub_ok and probe_ok
    positive = (hub_ok and hub_says_running(hub_server)) or (probe_ok and report_says_running(report))
    errors = "; ".join(e for e in (hub_err, probe_err) if e)
    answer = NodeAnswer(
        node=node,
        ok=both or positive,
        report=report if probe_ok else None,
        error=errors or None,
        hub_server=hub_server if hub_ok else None,
    )
    return answer, both


def _usable(answer: NodeAnswer, user: str) -> tuple[bool, str | None]:
    """Whether the answer counts as answered, and why not."""
    if not answer.ok:
        return False, answer.error or "did not answer"
    report = answer.report
    if report is not None and report.get("user") != user:
        return False, f"answered for user {report.get('user')!r}, not {user!r}"
    return True, None


def _running_on(answer: NodeAnswer) -> tuple[list[dict[str, Any]], set[str], set[str]]:
    """(servers running on the node, files it saw, files it claims as running).

    Three sources, each enough: the runtime files checked against /proc (``source=runtime``),
    the user's Jupyter processes found by UID when the node reports them (``source=proc``: a
    server whose file is gone, e.g. deleted by ``jupyter server list`` on another node, or a
    runtime directory that cannot be listed), and the hub's API (``source=hub``).
    """
    running: list[dict[str, Any]] = []
    seen: set[str] = set()
    claimed: set[str] = set()
    report = answer.report or {}
    for ev in report.get("evidence", []):
        seen.add(ev["file"])
        if ev.get("verdict") == "running":
            claimed.add(ev["file"])
            running.append(dict(ev, source="runtime"))
    claimed_pids = {server.get("pid") for server in running}
    for proc in report.get("processes") or []:
        if proc.get("pid") not in claimed_pids:
            running.append({"source": "proc", "pid": proc.get("pid"), "process": proc})
    if hub_says_running(answer.hub_server):
        hub = answer.hub_server or {}
        keys = ("ready", "pending", "url", "started", "last_activity")
        running.append({"source": "hub", **{k: hub.get(k) for k in keys}})
    return running, seen, claimed


def decide(user: str, answers: list[NodeAnswer]) -> Decision:
    """Combine every node's answer for ``user``.

    A node runs the server when its report has running evidence or its hub says the server
    is ready/pending. Several nodes -> "several"; none, with a node unanswered -> "unknown"
    (never "not_running"); none, with every node answering that the user has no account there
    (``user_exists`` false) -> "no_such_user". Stale files (claimed by no node) are listed only
    when every node answered with a report and no hub claims a server that has no runtime
    evidence.
    """
    user = validate_username(user, pattern=None)
    servers: dict[str, list[dict[str, Any]]] = {}
    unanswered: dict[str, str] = {}
    seen_files: set[str] = set()
    claimed_files: set[str] = set()
    stale_allowed = True
    no_account: list[str] = []
    problems: dict[str, dict[str, str]] = {}
    for answer in answers:
        usable, reason = _usable(answer, user)
        if not usable:
            unanswered[answer.node] = reason or "did not answer"
            stale_allowed = False
            continue
        if answer.report is not None and answer.report.get("user_exists") is False:
            no_account.append(answer.node)
        report = answer.report or {}
        found = {
            key: str(report[key]) for key in ("runtime_error", "hub_error", "grant_error") if report.get(key)
        }
        if found:
            problems[answer.node] = found
        running, seen, claimed = _running_on(answer)
        seen_files |= seen
        claimed_files |= claimed
        if answer.report is None or answer.report.get("runtime_error") or (running and not claimed):
            # No (complete) listing, or a live server without runtime evidence: one of the
            # files that look stale may be its file.
            stale_allowed = False
        if running:
            servers[answer.node] = running
    nodes = sorted(servers)
    if len(nodes) > 1:
        state = "several"
    elif nodes:
        state = "running"
    elif unanswered:
        state = "unknown"
    elif no_account and len(no_account) == len(answers):
        state = "no_such_user"
    else:
        state = "not_running"
    stale = sorted(seen_files - claimed_files) if stale_allowed else []
    return Decision(
        user, state, nodes, {n: servers[n] for n in nodes}, stale, unanswered, sorted(no_account), problems
    )


# Why a silent node was taken as holding no server of the user (Decision.released).
SILENT_NOT_RECENT = "not_recent"  # the node is not among the user's recent nodes
SILENT_DOWN = "down"  # an operator marked the node down: its servers are lost or unreachable


@dataclass(frozen=True)
class NodeHistory:
    """What the front door's assignment store knows of where a user's servers may be.

    ``watched``: nodes whose every server the store has listed at least once (a node's answer
    lists the units of all its servers); of a node outside it the store cannot tell who may run
    there. ``recent``: the nodes where the user may have a server as far as the store knows
    (placed or found there, or listed in the node's last recorded answer, within the retention).
    ``down``: nodes an operator marked down; their servers are taken as lost or unreachable.
    """

    watched: frozenset[str] = frozenset()
    recent: frozenset[str] = frozenset()
    down: frozenset[str] = frozenset()


def silent_node_may_hold(node: str, history: NodeHistory | None) -> str | None:
    """None when the silent ``node`` may hold the user's server, else why it cannot.

    Unknown is not absent: with no history, or a node the store never listed, or a node among
    the user's recent nodes, the node may hold the server (None), unless an operator marked it
    down (``SILENT_DOWN``: its servers are lost or unreachable). A watched node outside the
    user's recent nodes cannot hold a server the store would not have seen
    (``SILENT_NOT_RECENT``, also when it is down: the user had nothing there to lose).
    """
    if history is None:
        return None
    if node in history.watched and node not in history.recent:
        return SILENT_NOT_RECENT
    if node in history.down:
        return SILENT_DOWN
    return None


def settle_silent(decision: Decision, history: NodeHistory | None) -> Decision:
    """An "unknown" decision made "not_running" when no silent node may hold the user's server.

    Every other decision, and an unknown one with a silent node that may hold the server
    (``silent_node_may_hold``), is returned unchanged. The result names the silent nodes in
    ``released`` (node -> reason) and keeps them in ``unanswered``; no stale file is listed.
    """
    if decision.state != "unknown" or history is None:
        return decision
    reasons = {node: silent_node_may_hold(node, history) for node in sorted(decision.unanswered)}
    released = {node: reason for node, reason in reasons.items() if reason is not None}
    if len(released) != len(reasons):
        return decision
    return replace(decision, state="not_running", stale=[], released=released)
