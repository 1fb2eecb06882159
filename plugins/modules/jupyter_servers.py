#!/usr/bin/python
# Copyright (c) multijhub developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: jupyter_servers
short_description: Find a user's Jupyter servers on this node from runtime files and /proc
version_added: "0.1.0"
description:
  - Lists the user's Jupyter runtime directory (file names only, C(jpserver-<pid>.json) and
    C(nbserver-<pid>.json); the files are never opened, they hold the server's token) and
    checks each PID in this node's C(/proc) - the process must exist, belong to the user,
    be a Jupyter server and have started before its file was written.
  - Returns the node's evidence, its running servers, its available memory and its number of
    Jupyter server processes, and sets the fact C(multijhub_jupyter_servers) that the lookup
    M(multijhub.cluster.user_node) reads.
  - With O(all_users=true) lists every Jupyter server process on this node with its owner
    instead (processes are per node, so this is correct on a shared home), and sets the fact
    C(multijhub_node_servers).
  - With O(prune) removes the named runtime files of the user. Run it on the host that holds
    the home directories on its local file system (the C(home) group), as root is squashed over
    NFS. Only remove files that the lookup found stale with every node answering.
  - Never calls C(jupyter server list), which deletes other nodes' files on a shared home.
author:
  - multijhub developers (@multijhub)
options:
  user:
    description:
      - The user name. Validated strictly (C(^[a-z_][a-z0-9_.-]{0,31}$), no C(..)) before any
        path is built.
      - A valid name without an account on the node is an answer, not a failure
        (RV(user_exists=false), no evidence).
      - Required unless O(all_users=true).
    type: str
  runtime_template:
    description:
      - The user's Jupyter runtime directory when it is not the default
        C({home}/.local/share/jupyter/runtime). May use C({home}) and C({user}); a relative
        path is relative to the home directory.
    type: str
  prune:
    description:
      - Runtime file names to remove from the user's runtime directory, for example
        V(jpserver-4242.json). Each must be a C(jpserver-<pid>.json) or C(nbserver-<pid>.json)
        name; missing files are ignored. With this option no report is made.
    type: list
    elements: str
  hub_api:
    description:
      - A JSON file on the node, written by the C(jupyterhub) role, that names this node's hub REST
        API (C(api_url)) and the file holding a read-only token (C(token_file)). When it exists the
        hub's answer for the user is added to the report (RV(hub_server) or RV(hub_error)); the hub
        is the authority for the servers it spawned, even when their runtime file is gone.
      - Set to an empty string to skip the hub.
    type: path
    default: /etc/multijhub/jupyterhub/api.json
  service_group:
    description:
      - The group whose members (the front door's probe account) must be able to list the user's
        runtime directory. When set, a process with only that group tries to list it (the module
        runs as root, whose own listing succeeds where the probe's fails), and a failure is
        reported in RV(grant_error), for example after C(chmod 700) on the home.
    type: str
  all_users:
    description:
      - List every Jupyter server process on this node with its owner instead of one user's.
      - Mutually exclusive with O(user) and O(prune).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Nothing is removed in check mode; O(prune) reports what would be removed.
  diff_mode:
    support: full
    description: With O(prune), shows the runtime file names before and after.
notes:
  - The runtime directory is listed as the user (in a child process) when root cannot list it,
    as with a root-squashed NFS home.
  - A freshly started server's file may not be visible on another NFS client for the
    attribute-cache time; the hub's API is the authority for hub-spawned servers.
"""

EXAMPLES = r"""
- name: Ask every hub about juser1's Jupyter servers
  multijhub.cluster.jupyter_servers:
    user: juser1

- name: Which users have a Jupyter server on this node
  multijhub.cluster.jupyter_servers:
    all_users: true
  register: node_servers

- name: Remove stale runtime files on the host holding /home
  multijhub.cluster.jupyter_servers:
    user: juser1
    prune:
      - jpserver-4242.json
  delegate_to: "{{ groups['home'][0] }}"
"""

RETURN = r"""
node:
  description: The node's host name.
  returned: unless O(prune) is given
  type: str
  sample: hub2
user:
  description: The user name.
  returned: when O(user) is given
  type: str
  sample: juser1
runtime_error:
  description:
    - Why the runtime directory could not be listed (for example a broken ACL grant); the
      report then rests on RV(processes).
  returned: when the runtime directory could not be listed
  type: str
grant_error:
  description:
    - Why a member of O(service_group) cannot list the runtime directory (the front door's probe
      then cannot either); C(ansible-playbook site.yml --limit home) restores the grant.
  returned: when O(service_group) is set and its members cannot list the runtime directory
  type: str
hub_server:
  description:
    - The hub API's C(servers[""]) model of the user (C(ready), C(pending), C(url), C(started),
      ...), or null when the hub runs no server of theirs.
  returned: when the hub answered
  type: dict
hub_error:
  description: Why the hub API gave no answer (no configuration, unreachable, refused).
  returned: when O(hub_api) is set and the hub did not answer
  type: str
user_exists:
  description: Whether the user has an account on this node (false for a typo, or an account missing here).
  returned: when O(user) is given and O(prune) is not
  type: bool
  sample: true
uid:
  description: The user's uid (null without an account).
  returned: when O(user) is given and O(prune) is not
  type: int
  sample: 1001
runtime_dir:
  description: The runtime directory that was listed (or pruned); null without an account.
  returned: when O(user) is given
  type: str
  sample: /home/juser1/.local/share/jupyter/runtime
evidence:
  description: One entry per server runtime file, with its verdict on this node.
  returned: when O(user) is given and O(prune) is not
  type: list
  elements: dict
  contains:
    file:
      description: The file name.
      type: str
      sample: jpserver-4242.json
    pid:
      description: The PID in the name.
      type: int
      sample: 4242
    kind:
      description: V(jpserver) or V(nbserver).
      type: str
      sample: jpserver
    mtime:
      description: The file's modification time (epoch seconds).
      type: float
      sample: 1732620000.5
    verdict:
      description:
        - V(running) (this node runs it) or V(not-here). A process that started after its file
          was written counts as running up to 900 seconds later (clock skew between this node
          and the host holding the homes); later, the PID is taken as reused.
      type: str
      sample: running
    started_after_file:
      description: Seconds the process started after its file was written, beyond 1 s; 0 otherwise.
      type: float
      sample: 0.0
    reason:
      description: Why.
      type: str
      sample: process 4242 is a Jupyter server of uid 1001
    process:
      description: The process with that PID on this node (pid, uid, start_time, cmdline) or null.
      type: dict
servers:
  description: The entries of RV(evidence) whose verdict is V(running).
  returned: when O(user) is given and O(prune) is not
  type: list
  elements: dict
processes:
  description:
    - With O(all_users=true), every Jupyter server process on the node (user, uid, pid,
      start_time, uptime, cmdline), with C(installed), the versions of JupyterLab and
      jupyter_server its environment has now, and C(outdated), those of them installed after it
      started (it runs older code until it is restarted), for example V([jupyterlab 4.6.7]).
    - With O(user), the user's JupyterHub single-user servers on this node, found by UID in
      /proc (C(pid), C(start_time), C(cmdline) redacted), whether or not they have a runtime file.
  returned: unless O(prune) is given
  type: list
  elements: dict
users:
  description: The owners of RV(processes).
  returned: when O(all_users=true)
  type: list
  elements: str
  sample: [juser1, juser2]
mem_available:
  description: MemAvailable of the node in bytes.
  returned: unless O(prune) is given
  type: int
  sample: 5476083712
mem_total:
  description: MemTotal of the node in bytes.
  returned: unless O(prune) is given
  type: int
  sample: 8323764224
singleuser_servers:
  description: Number of Jupyter server processes on the node, any user.
  returned: unless O(prune) is given
  type: int
  sample: 3
collected_at:
  description: When the report was made (epoch seconds).
  returned: unless O(prune) is given
  type: float
removed:
  description: The files removed (or that would be removed in check mode).
  returned: when O(prune) is given
  type: list
  elements: str
  sample: [jpserver-4242.json]
absent:
  description: The files to prune that were not there.
  returned: when O(prune) is given
  type: list
  elements: str
  sample: []
"""

import json
import traceback
from urllib.error import HTTPError, URLError
from urllib.parse import quote

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url
from ansible_collections.multijhub.cluster.plugins.module_utils.hubs import default_server
from ansible_collections.multijhub.cluster.plugins.module_utils.report import (
    missing_user_report,
    node_report,
    node_servers_report,
)
from ansible_collections.multijhub.cluster.plugins.module_utils.runtime import (
    RuntimeDirError,
    list_runtime_files,
    parse_runtime_name,
    remove_runtime_files,
    runtime_dir_for,
)
from ansible_collections.multijhub.cluster.plugins.module_utils.usernames import (
    InvalidUsername,
    UnknownUser,
    lookup_user,
    validate_username,
)


def _ask_hub(module: AnsibleModule, user: str, report: dict) -> None:
    """Add the hub API's answer for ``user`` to ``report`` (hub_server, or hub_error)."""
    config_path = module.params["hub_api"]
    if not config_path:
        return
    try:
        with open(config_path, encoding="utf-8") as handle:
            config = json.load(handle)
        with open(config["token_file"], encoding="ascii") as handle:
            token = handle.read().strip()
        api_url = str(config["api_url"]).rstrip("/")
    except FileNotFoundError as exc:
        report["hub_error"] = f"no hub API configuration: {exc.filename} is missing"
        return
    except (OSError, ValueError, KeyError, TypeError) as exc:
        report["hub_error"] = f"cannot read the hub API configuration {config_path}: {exc}"
        return
    # HTTP by Ansible's own client (open_url): no proxy, the token never logged.
    status, model = 0, None
    try:
        response = open_url(
            f"{api_url}/users/{quote(user, safe='')}",
            headers={"Authorization": f"token {token}"},
            timeout=5,
            use_proxy=False,
            follow_redirects="none",
        )
        status, model = response.status, json.loads(response.read())
    except HTTPError as exc:
        status = exc.code
    except (URLError, OSError, ValueError) as exc:
        report["hub_error"] = f"hub API did not answer: {exc}"
        return
    try:
        report["hub_server"] = default_server(status, model)
    except ValueError as exc:
        report["hub_error"] = str(exc)


def _prune(module: AnsibleModule, user: str, names: list[str]) -> None:
    bad = [name for name in names if parse_runtime_name(name) is None]
    if bad:
        module.fail_json(
            msg="prune accepts only jpserver-<pid>.json / nbserver-<pid>.json names; refused: "
            + ", ".join(repr(name) for name in bad)
        )
    pw = lookup_user(user)
    runtime_dir = runtime_dir_for(pw.pw_dir, module.params["runtime_template"], user=pw.pw_name)
    before = sorted(f.name for f in list_runtime_files(runtime_dir))
    removed, absent = remove_runtime_files(runtime_dir, names, trusted=pw.pw_dir, dry_run=module.check_mode)
    after = [name for name in before if name not in removed]
    result = {
        "changed": bool(removed),
        "user": pw.pw_name,
        "runtime_dir": runtime_dir,
        "removed": removed,
        "absent": absent,
    }
    if module._diff:
        result["diff"] = {
            "before_header": runtime_dir,
            "after_header": runtime_dir,
            "before": "".join(name + "\n" for name in before),
            "after": "".join(name + "\n" for name in after),
        }
    module.exit_json(**result)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "user": {"type": "str"},
            "runtime_template": {"type": "str"},
            "prune": {"type": "list", "elements": "str"},
            "all_users": {"type": "bool", "default": False},
            "hub_api": {"type": "path", "default": "/etc/multijhub/jupyterhub/api.json"},
            "service_group": {"type": "str"},
        },
        supports_check_mode=True,
    )
    user = module.params["user"]
    if module.params["all_users"] and (user is not None or module.params["prune"] is not None):
        module.fail_json(msg="all_users=true cannot be combined with user or prune")
    if not module.params["all_users"] and user is None:
        module.fail_json(msg="one of user or all_users=true is required")
    try:
        if module.params["all_users"]:
            report = node_servers_report()
            module.exit_json(changed=False, ansible_facts={"multijhub_node_servers": report}, **report)
        validate_username(user, pattern=None)
        if module.params["prune"] is not None:
            _prune(module, user, module.params["prune"])
        try:
            report = node_report(
                user,
                runtime_template=module.params["runtime_template"],
                user_processes=True,
                service_group=module.params["service_group"],
            )
            _ask_hub(module, user, report)
        except UnknownUser:
            # An answer, not a failure: this node has no such account (a typo, or a user
            # missing here only). The lookup tells which.
            report = missing_user_report(user)
    except InvalidUsername as exc:
        module.fail_json(msg=f"invalid user name: {exc}")
    except UnknownUser as exc:
        module.fail_json(msg=str(exc))
    except RuntimeDirError as exc:
        module.fail_json(msg=exc.strerror or str(exc), errno=exc.errno)
    except (OSError, ValueError) as exc:
        module.fail_json(msg=f"{type(exc).__name__}: {exc}", exception=traceback.format_exc())
    module.exit_json(changed=False, ansible_facts={"multijhub_jupyter_servers": report}, **report)


if __name__ == "__main__":
    main()
