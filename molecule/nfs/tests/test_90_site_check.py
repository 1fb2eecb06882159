"""site.yml on the converged machines, in check mode: nothing to change. (The scenario's
idempotence step already ran it a second time for real: no change.)"""

from __future__ import annotations

from conftest import SITE_TAGS, ansible_playbook, recap


def test_site_check_mode_reports_nothing_to_change() -> None:
    result = ansible_playbook("site.yml", "--check", "--diff", "--tags", SITE_TAGS)
    assert result.returncode == 0, result.stdout[-4000:]
    hosts = recap(result.stdout)
    assert set(hosts) == {"nfs-home", "nfs-hub", "nfs-front"}, result.stdout[-2000:]
    changed = {host: counts["changed"] for host, counts in hosts.items() if counts["changed"]}
    assert not changed, result.stdout[-6000:]
