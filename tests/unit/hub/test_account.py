"""Issue 17: is an account still allowed to log in (multijhub.hub.account), without a password."""

from __future__ import annotations

import sys
import types

import pytest

from multijhub.hub import account


def test_pam_codes_map_to_account_states():
    assert account.pam_state(13) == account.EXPIRED
    assert account.pam_state(12) == account.PASSWORD_CHANGE
    assert account.pam_state(10) == account.UNKNOWN_USER
    assert account.pam_state(6) == account.DENIED
    assert account.pam_state(4) == account.UNAVAILABLE  # PAM_SYSTEM_ERR: the check failed, not the account
    assert account.UNAVAILABLE not in account.REFUSED
    assert set(account.MESSAGES) >= account.REFUSED


SHADOW = """root:*:19000:0:99999:7:::
juser1:!$6$salt$hash:19000:0:99999:7:::
juser2:$6$salt$hash:19000:0:99999:7:::
juser10:!:19000::::::
juser3:$6$salt$hash:19000:0:99999:7::1:
juser4:$6$salt$hash:19000:0:99999:7::99999:
"""


def test_a_locked_password_in_the_local_shadow_file(tmp_path):
    shadow = tmp_path / "shadow"
    shadow.write_text(SHADOW)
    assert account.shadow_locked("juser1", str(shadow)) is True
    assert account.shadow_locked("juser2", str(shadow)) is False
    assert account.shadow_locked("juser", str(shadow)) is None  # a prefix of juser1 is not juser1
    assert account.shadow_locked("ldapuser", str(shadow)) is None
    assert account.shadow_locked("juser1", str(tmp_path / "missing")) is None


@pytest.fixture
def fake_pamela(monkeypatch):
    """pamela.check_account as a table: user -> PAM code (0 ok)."""
    codes: dict[str, int] = {}

    class PAMError(Exception):
        def __init__(self, message="", errno=None):
            super().__init__(message)
            self.errno = errno

    def check_account(user, service="login", encoding="utf-8"):
        code = codes.get(user, 0)
        if code:
            raise PAMError(errno=code)

    module = types.SimpleNamespace(PAMError=PAMError, check_account=check_account)
    monkeypatch.setitem(sys.modules, "pamela", module)
    return codes


def test_the_local_expiry_day(tmp_path):
    shadow = tmp_path / "shadow"
    shadow.write_text(SHADOW)
    assert account.shadow_state("juser3", str(shadow)) == account.EXPIRED  # usermod -e 1
    assert account.shadow_state("juser4", str(shadow)) == account.OK
    assert account.shadow_state("juser2", str(shadow)) == account.OK
    assert account.shadow_state("juser1", str(shadow)) == account.LOCKED


def test_check_account_asks_pam_then_the_local_lock(tmp_path, fake_pamela):
    shadow = tmp_path / "shadow"
    shadow.write_text(SHADOW)
    fake_pamela.update({"juser2": 13, "gone": 10, "broken": 4, "juser3": 7, "juser4": 7})
    assert account.check_account("juser2", shadow=str(shadow)) == account.EXPIRED
    assert account.check_account("juser1", shadow=str(shadow)) == account.LOCKED  # PAM says ok: passwd -l
    assert account.check_account("root", shadow=str(shadow)) == account.OK
    assert account.check_account("gone", shadow=str(shadow)) == account.UNKNOWN_USER
    assert account.check_account("broken", shadow=str(shadow)) == account.UNAVAILABLE
    # Debian's common-account folds pam_unix's ACCT_EXPIRED into AUTH_ERR: shadow tells which.
    assert account.check_account("juser3", shadow=str(shadow)) == account.EXPIRED
    fake_pamela["root"] = 7
    assert account.check_account("root", shadow=str(shadow)) == account.DENIED
    fake_pamela["multijhub-nosuchuser"] = 7  # pam_unix's USER_UNKNOWN, folded the same way
    assert account.check_account("multijhub-nosuchuser", shadow=str(shadow)) == account.UNKNOWN_USER
