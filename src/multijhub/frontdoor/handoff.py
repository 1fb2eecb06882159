"""Send the user to a hub: a plain redirect, or a page that POSTs a login proof.

With proof keys configured, the front door answers with a page whose form is submitted
by a small script (a button under ``<noscript>``) to ``{hub}/hub/multijhub-login``; the
hub's FrontDoorAuthenticator verifies the proof and logs the user in, so nobody types a
password twice. The proof lives only in that POST body: never in a URL or a log.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from flask import abort, redirect, render_template
from flask.typing import ResponseReturnValue

from multijhub.hub.proof import create_proof

from .config import NodeConfig
from .redirects import on_cluster, spawn_url

LOGIN_PATH = "/hub/multijhub-login"


def proof_action(node: NodeConfig) -> str:
    """Where the proof is POSTed on ``node``."""
    return node.base_url + LOGIN_PATH


def hub_path(url: str) -> str:
    """The path and query of a hub URL: the proof's ``next``."""
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def send_to_hub(
    node: NodeConfig,
    user: str,
    next_path: str,
    *,
    nodes: Sequence[NodeConfig],
    keys: Sequence[bytes],
    max_age: float,
) -> ResponseReturnValue:
    """Redirect (no keys) or the auto-submitted proof page for ``user`` on ``node``."""
    url = spawn_url(node, next_path)
    action = proof_action(node)
    if not on_cluster(url, nodes) or not on_cluster(action, nodes):  # defence in depth
        abort(502)
    if not keys:
        return redirect(url, code=302)
    proof = create_proof(keys, sub=user, aud=node.name, next_path=hub_path(url), max_age=max_age)
    return render_template("handoff.html", node=node, action=action, proof=proof, max_age=int(max_age))
