from __future__ import annotations

import pwd

import pytest
from multijhub_core.usernames import InvalidUsername, UnknownUser, lookup_user, validate_username

HOSTILE = [
    "",
    "../etc",
    "a/b",
    "*",
    "?",
    "[a]",
    "a b",
    "a\x00",
    "x" * 40,
    "x" * 33,
    "..",
    ".hidden",
    "UPPER",
    "é",
    None,
    5,
    "a..b",
    "juser1.",
    "juser1\n",
    " juser1",
    "-rf",
    "1abc",
    "ju\tser",
    "juser1/",
    "~root",
    "$(id)",
    "juser1;id",
    True,
    b"juser1",
    ["juser1"],
    "\uff4auser",  # fullwidth letter j
    "jüser",
]


@pytest.mark.parametrize("name", HOSTILE, ids=repr)
def test_hostile_names_are_rejected(name: object) -> None:
    with pytest.raises(InvalidUsername) as info:
        validate_username(name)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert message and "\x00" not in message and "\n" not in message


@pytest.mark.parametrize("name", HOSTILE, ids=repr)
def test_lookup_user_validates_before_pwd(name: object, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(_name: str) -> None:
        raise AssertionError("pwd was consulted for a hostile name")

    monkeypatch.setattr(pwd, "getpwnam", forbidden)
    with pytest.raises(InvalidUsername):
        lookup_user(name)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["juser1", "_svc", "a", "a.b-c_d", "x" * 32, "root", "flask_users"])
def test_good_names(name: str) -> None:
    assert validate_username(name) == name


def test_messages_are_clear() -> None:
    with pytest.raises(InvalidUsername, match="empty"):
        validate_username("")
    with pytest.raises(InvalidUsername, match="not int"):
        validate_username(5)
    with pytest.raises(InvalidUsername, match="longer than 32"):
        validate_username("x" * 40)
    with pytest.raises(InvalidUsername, match=r"'\.\.'"):
        validate_username("a..b")


def test_lookup_user_real() -> None:
    assert lookup_user("root").pw_uid == 0
    with pytest.raises(UnknownUser, match="no such user"):
        lookup_user("multijhub_nosuchuser")
    assert issubclass(UnknownUser, LookupError)
