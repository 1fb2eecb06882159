# Copyright (c) multijhub developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: user_node
short_description: Decide on which hub a user's Jupyter server runs
version_added: "0.1.0"
author:
  - multijhub developers (@multijhub)
description:
  - Combines the answers of every hub (the fact C(multijhub_jupyter_servers) set by the module
    M(multijhub.cluster.jupyter_servers) earlier in the same run) with the rules of the
    multijhub core and returns the decision for each user name given.
  - The module must have run for that user on the hubs first (as C(where.yml) does). A hub
    without that fact for that user counts as not answered, so the state is never
    V(not_running) when a hub is missing.
  - User names are validated strictly before anything else.
options:
  _terms:
    description: The user names.
    required: true
    type: list
    elements: str
  hubs_group:
    description: The inventory group whose hosts are the hubs.
    type: str
    default: hubs
  on_unknown:
    description:
      - What to do when the state is V(unknown) (a hub did not answer and no server was found).
      - V(return) returns the decision, V(error) raises an error naming the hubs.
    type: str
    choices: [return, error]
    default: return
  result_var:
    description:
      - Name of a registered variable of the module task on the hubs; when a hub's task failed
        or the hub was unreachable, its message is given as the reason.
    type: str
    default: multijhub_jupyter_servers_result
  username_pattern:
    description:
      - The site's user-name rule (a regular expression the whole name must match), within
        the core's fixed safety bounds. Default the core's rule, C([a-z_][a-z0-9_.-]{0,31}).
        Playbooks pass C(multijhub_username_pattern).
    type: str
  check_only:
    description:
      - Only validate the user names and return them (as strings), without reading any fact.
        Lets a playbook reject a bad name before it contacts any host.
    type: bool
    default: false
  max_age:
    description:
      - Ignore facts older than this many seconds (by the hub's clock), for fact caches that
        keep facts across runs. V(0) disables the check.
    type: int
    default: 0
notes:
  - Each hub's memory is taken from the same facts to choose where a new server would go
    (RV(_raw[].placement)), with the front door's placement policy.
"""

EXAMPLES = r"""
- name: Ask the hubs
  multijhub.cluster.jupyter_servers:
    user: juser1
  ignore_errors: true
  ignore_unreachable: true
  register: multijhub_jupyter_servers_result

- name: Decide
  ansible.builtin.debug:
    msg: "{{ lookup('multijhub.cluster.user_node', 'juser1') }}"
  delegate_to: localhost
  run_once: true

- name: Validate a user name before asking any host (fails with a clear message)
  ansible.builtin.set_fact:
    valid_user: "{{ lookup('multijhub.cluster.user_node', user, check_only=true) }}"

- name: Fail when a hub did not answer
  ansible.builtin.debug:
    msg: "{{ lookup('multijhub.cluster.user_node', 'juser1', on_unknown='error', hubs_group='jupyter') }}"
"""

RETURN = r"""
_raw:
  description: One decision per user name (with O(check_only=true), the validated names).
  type: list
  elements: dict
  contains:
    user:
      description: The user name.
      type: str
    state:
      description:
        - V(running), V(several), V(not_running), V(no_such_user) (every hub answered that it has
          no account of that name) or V(unknown).
      type: str
    nodes:
      description: The hubs that run the user's server.
      type: list
      elements: str
    servers:
      description:
        - For each such hub, its running servers. Runtime evidence (C(source=runtime)) has
          C(file), C(pid), C(process) and C(uptime) in seconds (by the hub's clock); the hub
          API (C(source=hub)) has C(ready), C(pending), C(url), C(started).
      type: dict
    stale:
      description: Runtime files no hub claims; only when every hub answered.
      type: list
      elements: str
    unanswered:
      description: The hubs that did not answer, with the reason.
      type: dict
    no_account:
      description: The hubs that answered that the user has no account there (never placed there).
      type: list
      elements: str
    placement:
      description:
        - When the state is V(not_running), the hub a new server would go to (C(node)) with
          its C(mem_available) in bytes; otherwise null. Null also when no hub is eligible.
      type: dict
    urls:
      description:
        - Each hub's public URL (host variable C(jupyterhub_public_url), a URL without a path
          getting C(jupyterhub_base_url) appended; by default
          C(http://<hub>:<jupyterhub_port or 8000><jupyterhub_base_url>)), as the front door
          computes it (filter M(multijhub.cluster.hub_public_url)).
      type: dict
    answer:
      description:
        - "The decision in one line, as C(where.yml) prints it, for example
          C(juser1: running on hub2 (pid 4242, up 3h12m) -> http://hub2:8000/user/juser1/)."
      type: str
    details:
      description:
        - Lines that explain it, when there is something to explain; the hubs that did not
          answer and why, the stale runtime files and the command that prunes them.
      type: list
      elements: str
"""

import json
import time
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible_collections.multijhub.cluster.plugins.module_utils.answer import answer_text, details_lines
from ansible_collections.multijhub.cluster.plugins.module_utils.decision import NodeAnswer, decide
from ansible_collections.multijhub.cluster.plugins.module_utils.hubs import hub_urls
from ansible_collections.multijhub.cluster.plugins.module_utils.placement import (
    NodeLoad,
    choose_node,
)
from ansible_collections.multijhub.cluster.plugins.module_utils.usernames import (
    DEFAULT_PATTERN,
    InvalidUsername,
    InvalidUsernamePattern,
    validate_username,
)

FACT = "multijhub_jupyter_servers"


def _plain(value: Any) -> Any:  # noqa: ANN401 - any JSON value
    """A plain JSON copy of templated/lazy containers."""
    return json.loads(json.dumps(value, default=str))


def _as_bool(value: Any) -> bool:  # noqa: ANN401
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def _add_uptimes(decision: dict[str, Any], answers: list[NodeAnswer]) -> None:
    """Add ``uptime`` (seconds, by the hub's own clock) to each server found in /proc."""
    collected = {a.node: float((a.report or {}).get("collected_at", 0)) for a in answers}
    for node, servers in decision["servers"].items():
        for server in servers:
            process = server.get("process") or {}
            if (
                server.get("source") in ("runtime", "proc")
                and process.get("start_time")
                and collected.get(node)
            ):
                server["uptime"] = max(0.0, collected[node] - float(process["start_time"]))


class LookupModule(LookupBase):
    """Decide where each user's Jupyter server runs, from the hubs' facts."""

    def _host_vars(self, variables: dict[str, Any], host: str) -> dict[str, Any]:
        hostvars = variables.get("hostvars") or {}
        try:
            return hostvars[host]
        except KeyError:
            return {}

    def _fact(self, host_vars: Any) -> Any:  # noqa: ANN401
        facts = host_vars.get("ansible_facts") or {}
        report = facts.get(FACT) if hasattr(facts, "get") else None
        if report is None:
            report = host_vars.get(FACT)
        return report

    def _failure_reason(self, host_vars: Any) -> str | None:  # noqa: ANN401
        result = host_vars.get(self.get_option("result_var"))
        if not hasattr(result, "get"):
            return None
        if result.get("unreachable"):
            return "unreachable: " + str(result.get("msg", "")).strip().splitlines()[0][:200]
        if result.get("failed"):
            return "failed: " + str(result.get("msg", "")).strip()[:200]
        return None

    def _answer(self, user: str, host: str, host_vars: Any) -> NodeAnswer:  # noqa: ANN401
        reason = self._failure_reason(host_vars)
        if reason is not None:
            return NodeAnswer(node=host, ok=False, error=reason)
        report = self._fact(host_vars)
        if not hasattr(report, "get") or report.get("user") != user:
            return NodeAnswer(node=host, ok=False, error=f"no answer for {user} in this run")
        report = _plain(report)
        max_age = self.get_option("max_age")
        if max_age and time.time() - float(report.get("collected_at", 0)) > max_age:
            return NodeAnswer(node=host, ok=False, error=f"answer older than {max_age} s")
        hub_server = report.get("hub_server")
        return NodeAnswer(
            node=host, ok=True, report=report, hub_server=hub_server if isinstance(hub_server, dict) else None
        )

    def _base_url(self, host: str, variables: dict[str, Any]) -> str:
        host_vars = self._host_vars(variables, host)
        try:
            return hub_urls(host, host_vars).public_url
        except ValueError as exc:
            raise AnsibleLookupError(f"multijhub.cluster.user_node: {exc}") from None

    def _placement(self, answers: list[NodeAnswer], variables: dict[str, Any]) -> dict[str, Any] | None:
        loads: dict[str, NodeLoad] = {}
        for answer in answers:
            report = answer.report or {}
            if report.get("user_exists") is False:
                continue  # no account there: a server cannot start on that node
            host_vars = self._host_vars(variables, answer.node)
            loads[answer.node] = NodeLoad(
                name=answer.node,
                mem_available=int(report.get("mem_available", 0)),
                mem_total=int(report.get("mem_total", 0)),
                healthy=answer.ok,
                drained=_as_bool(host_vars.get("multijhub_drained", False)),
            )
        chosen = choose_node(list(loads.values()))
        if chosen is None:
            return None
        return {"node": chosen, "mem_available": loads[chosen].mem_available}

    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[Any]:  # noqa: ANN401
        """Return one decision dict per user name in ``terms``."""
        self.set_options(var_options=variables, direct=kwargs)
        variables = variables or {}
        users: list[str] = []
        pattern = self.get_option("username_pattern") or DEFAULT_PATTERN
        for term in terms:
            try:
                users.append(validate_username(term, pattern))
            except (InvalidUsername, InvalidUsernamePattern) as exc:
                raise AnsibleLookupError(f"multijhub.cluster.user_node: {exc}") from None
        if self.get_option("check_only"):
            return users
        group = self.get_option("hubs_group")
        hubs = list((variables.get("groups") or {}).get(group) or [])
        if not hubs:
            raise AnsibleLookupError(
                f"multijhub.cluster.user_node: the inventory group {group!r} has no hosts"
            )
        results: list[dict[str, Any]] = []
        for user in users:
            answers = [self._answer(user, host, self._host_vars(variables, host)) for host in hubs]
            decision = decide(user, answers).to_dict()
            _add_uptimes(decision, answers)
            decision["placement"] = (
                self._placement(answers, variables) if decision["state"] == "not_running" else None
            )
            decision["urls"] = {host: self._base_url(host, variables) for host in hubs}
            decision["answer"] = answer_text(decision, decision["urls"], hubs)
            decision["details"] = details_lines(
                decision, f"ansible-playbook where.yml -e user={user} -e prune=true"
            )
            if decision["state"] == "unknown" and self.get_option("on_unknown") == "error":
                raise AnsibleLookupError(
                    f"multijhub.cluster.user_node: {user}: unknown, these hubs did not answer: "
                    + "; ".join(f"{n} ({r})" for n, r in sorted(decision["unanswered"].items()))
                )
            results.append(decision)
        return results
