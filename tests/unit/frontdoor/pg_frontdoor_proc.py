"""One front door process for the PostgreSQL race test (run by test_pgstore.py).

argv: DSN HUB_PORT WORKDIR PREFERRED_NODE START_EPOCH USER...
Builds the real app on the PostgreSQL store (from the configuration's DSN), logs each
user in at START_EPOCH (+ 1 s per round) and prints one JSON line per user with the
node it was sent to. Its fake probe makes PREFERRED_NODE look freest, so only the
store's per-user lock can make two such processes agree.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import frontdoor_env as conftest

from multijhub.frontdoor import placing
from multijhub.frontdoor.app import create_app
from multijhub.frontdoor.config import StoreConfig, load_config
from multijhub.frontdoor.hubapi import HubApi
from multijhub.frontdoor.probe import SshProbe
from multijhub.frontdoor.resolver import Resolver

GiB = conftest.GiB


def main() -> int:
    dsn, port, workdir, preferred, start = sys.argv[1:6]
    users = sys.argv[6:]
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    config = load_config(str(conftest.write_config(work, int(port), deadline=2.0)))
    config = dataclasses.replace(config, store=StoreConfig(kind="postgresql", dsn=dsn))
    probe = conftest.FakeProbe()
    probe.mem = {n.name: ((12 if n.name == preferred else 6) * GiB, 16 * GiB) for n in config.nodes}
    apis = {n.name: HubApi(n.name, n.api_url, conftest.TOKEN) for n in config.nodes}
    resolver = Resolver(config.nodes, apis, SshProbe(config.ssh, runner=probe), deadline=config.deadline)
    app = create_app(
        config,
        authenticator=conftest.FakeAuth(conftest.PASSWORDS),
        resolver=resolver,
        account_check=conftest.FakeAccounts(),
    )
    app.config["TESTING"] = True

    real_choose = placing.choose_node

    def slow_choose(*args, **kwargs):  # widen the read-decide-write window
        time.sleep(0.2)
        return real_choose(*args, **kwargs)

    placing.choose_node = slow_choose
    clients = {}
    for user in users:
        client = app.test_client()
        assert conftest.login(client, user, conftest.PASSWORDS[user]).status_code == 303
        clients[user] = client
    for i, user in enumerate(users):
        at = float(start) + i
        while time.time() < at:
            time.sleep(0.001)
        resp = clients[user].get("/")
        location = resp.headers.get("Location", f"HTTP {resp.status_code}")
        print(json.dumps({"user": user, "location": location}), flush=True)
    resolver.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
