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
        path is built, and must exist on the node.
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
uid:
  description: The user's uid.
  returned: when O(user) is given and O(prune) is not
  type: int
  sample: 1001
runtime_dir:
  description: The runtime directory that was listed (or pruned).
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
      description: V(running) (this node runs it) or V(not-here).
      type: str
      sample: running
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
    - Every Jupyter server process on the node (user, uid, pid, start_time, uptime, cmdline).
    - C(installed), the versions of JupyterLab and jupyter_server its environment has now, and C(outdated),
      those of them installed after it started (it runs older code until it is restarted), for example
      V([jupyterlab 4.6.7]).
  returned: when O(all_users=true)
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

import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.multijhub.cluster.plugins.module_utils.report import (
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
        validate_username(user)
        if module.params["prune"] is not None:
            _prune(module, user, module.params["prune"])
        report = node_report(user, runtime_template=module.params["runtime_template"])
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
