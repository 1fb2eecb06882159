"""The front door's nginx configuration (roles/redirector/templates/nginx-frontdoor.conf.j2): its request
filters' regular expressions read from the template and run with Python's ``re`` (the same syntax as
nginx's PCRE for these), and its server_name. The molecule test test_62_single_address sends the same
requests to a real nginx."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

TEMPLATE = Path(__file__).resolve().parents[3] / "roles/redirector/templates/nginx-frontdoor.conf.j2"


def map_patterns(variable: str) -> list[re.Pattern[str]]:
    """The regular expressions of the ``map ... $variable { ... }`` block that set it to 1."""
    text = TEMPLATE.read_text()
    block = re.search(r"^map \S+ \$" + re.escape(variable) + r" \{\n(.*?)^\}", text, re.M | re.S)
    assert block, f"no map for ${variable} in {TEMPLATE}"
    patterns = []
    for quoted, value in re.findall(r'^\s*"(~\*?[^"]*)"\s+(\S+);', block.group(1), re.M):
        assert value == "1", (quoted, value)
        flags = re.I if quoted.startswith("~*") else 0
        patterns.append(re.compile(quoted.lstrip("~*"), flags))
    assert patterns, f"${variable} has no regular expression"
    return patterns


def matches(variable: str, value: str) -> bool:
    return any(p.search(value) for p in map_patterns(variable))


@pytest.mark.parametrize(
    "request_line",
    [
        "GET http://hub1:8000/node/hub1/ HTTP/1.1",
        "GET https://jupyter.example.org/node/hub1/ HTTP/1.1",
        # nginx reads any number of spaces after the method: still absolute-form, the server chosen
        # by the target's host and the client's Host header passed to the hub as sent.
        "GET  https://jupyter.example.org/node/hub1/ HTTP/1.1",
        "POST    http://hub1:8000/node/hub1/hub/login HTTP/1.1",
    ],
)
def test_absolute_form_request_lines_are_refused(request_line) -> None:
    assert matches("multijhub_absolute_form", request_line)


@pytest.mark.parametrize(
    "request_line",
    [
        "GET /node/hub1/hub/login?next=https%3A%2F%2Fx HTTP/1.1",
        "GET /node/hub1/hub/login?next=http://x/ HTTP/1.1",
        "GET  /node/hub1/ HTTP/1.1",
    ],
)
def test_origin_form_request_lines_pass(request_line) -> None:
    assert not matches("multijhub_absolute_form", request_line)


def redirector_var(name: str, **variables: object) -> object:
    """A variable of roles/redirector/vars/main.yml templated by Ansible with ``variables``."""
    role_vars = yaml.safe_load((TEMPLATE.parents[1] / "vars/main.yml").read_text())
    trusted = {k: trust_as_template(v) if isinstance(v, str) else v for k, v in role_vars.items()}
    templar = Templar(loader=DataLoader(), variables={**trusted, **variables})
    return templar.template(trust_as_template("{{ " + name + " }}"))


@pytest.mark.parametrize(
    ("public_url", "server_name"),
    [
        ("https://jupyter.example.org", "jupyter.example.org"),
        ("https://Jupyter.example.org:8443", "jupyter.example.org"),
        ("https://10.0.0.1:8443", "10.0.0.1"),
        # nginx compares the Host header's "[fd00::1]" with server_name: without brackets every
        # request got the 421 of the default server.
        ("https://[fd00::1]:8443", "[fd00::1]"),
        ("", ""),
    ],
)
def test_nginx_server_name_is_the_public_host(public_url, server_name) -> None:
    assert redirector_var("redirector_public_host", redirector_public_url=public_url) == server_name


def render_nginx(nodes: list[dict[str, object]], **variables: object) -> str:
    """nginx-frontdoor.conf.j2 rendered by Ansible with the role's defaults and vars, ``nodes`` as
    redirector_nodes (the shape nodes.yml.j2 makes) and ``variables`` over them."""
    role = TEMPLATE.parents[1]
    values: dict[str, object] = {}
    for part in ("defaults/main.yml", "vars/main.yml"):
        for key, value in yaml.safe_load((role / part).read_text()).items():
            values[key] = trust_as_template(value) if isinstance(value, str) else value
    values.update(
        redirector_wheel={},
        redirector_nodes=nodes,
        ansible_facts={"all_ipv6_addresses": []},
        ansible_managed="Ansible managed",
        groups={"frontdoor": ["fd1"]},
        inventory_hostname="fd1",
        multijhub_public_url="https://jupyter.example.org",
        **variables,
    )
    templar = Templar(loader=DataLoader(), variables=values)
    return str(templar.template(trust_as_template(TEMPLATE.read_text())))


def node(name: str, proxy_host: str) -> dict[str, object]:
    return {
        "name": name,
        "base_url": f"https://jupyter.example.org/node/{name}",
        "prefix": f"/node/{name}/",
        "proxy_url": f"https://{name}:8000/node/{name}",
        "proxy_host": proxy_host,
        "proxy_port": 8000,
        "proxy_name": name,
    }


@pytest.mark.parametrize(
    ("proxy_host", "server"),
    [
        ("10.0.0.2", "server 10.0.0.2:8000;"),
        ("hub1.example.org", "server hub1.example.org:8000;"),
        # nginx read "fd00::2:8000" as host "fd00", port ":2:8000" (nginx -t: invalid port in upstream).
        ("fd00::2", "server [fd00::2]:8000;"),
        ("[fd00::2]", "server [fd00::2]:8000;"),
    ],
)
def test_the_upstream_of_a_hub_reached_at_its_ansible_host(proxy_host, server) -> None:
    text = render_nginx([node("hub1", proxy_host)])
    assert re.findall(r"^\s*server \S+;$", text, re.M) == [f"    {server}"]


def test_nginxs_own_redirects_are_relative_in_proxied_mode() -> None:
    """ "/node/hub1" is answered by nginx with a 301 to "/node/hub1/": absolute, it named the port
    nginx listens on (8443), not the public address's (443 behind a load balancer)."""
    text = render_nginx([node("hub1", "10.0.0.2")], redirector_tls_port=8443)
    server = text[text.index("server_name jupyter.example.org;") :]
    assert re.search(r"^\s*absolute_redirect off;$", server, re.M)
