from __future__ import annotations

import pwd

import pytest
from multijhub.core.usernames import (
    DEFAULT_PATTERN,
    InvalidUsername,
    InvalidUsernamePattern,
    UnknownUser,
    lookup_user,
    normalize_username,
    validate_username,
)

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


# Refused by the default rule but inside the safety bounds (a site may allow them).
SITE_ONLY = ["1abc"]


@pytest.mark.parametrize("name", [n for n in HOSTILE if n not in SITE_ONLY], ids=repr)
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


# --- Issue 17: one configurable rule, names normalised as the hubs do ------------------------------


@pytest.mark.parametrize(
    ("typed", "name"),
    [("Juser1", "juser1"), ("JUSER1", "juser1"), (" juser1 ", "juser1"), ("juser1", "juser1")],
)
def test_names_are_normalised_like_jupyterhub_does(typed: str, name: str) -> None:
    assert validate_username(normalize_username(typed)) == name


@pytest.mark.parametrize("typed", ["juser1\n", "\tjuser1", "JÜSER1", "\u212auser", "İuser"])
def test_normalisation_folds_only_ascii_case_and_spaces(typed: str) -> None:
    """No other whitespace is stripped and no non-ASCII letter is folded onto an ASCII one."""
    with pytest.raises(InvalidUsername):
        validate_username(normalize_username(typed))


def test_normalising_a_non_string_returns_it_unchanged() -> None:
    assert normalize_username(None) is None
    assert normalize_username(5) == 5


def test_a_site_pattern_narrows_the_rule() -> None:
    pattern = r"^[a-z]{2}[0-9]{4}$"
    assert validate_username("ab1234", pattern) == "ab1234"
    with pytest.raises(InvalidUsername, match=r"site's rule"):
        validate_username("juser1", pattern)


def test_a_site_pattern_widens_the_rule_within_the_safety_bounds() -> None:
    wide = r"[a-z0-9_][a-z0-9_.@-]{0,31}"
    assert validate_username("1abc", wide) == "1abc"
    assert validate_username("ann@dept", wide) == "ann@dept"
    with pytest.raises(InvalidUsername):
        validate_username("1abc")  # the default
    # No pattern can let a name become a path, an option or another script's text.
    for bad in ["../etc", "-rf", "a/b", "a b", "x" * 33, "UPPER", "jüser", ".hidden", "a..b", "a."]:
        with pytest.raises(InvalidUsername):
            validate_username(bad, r".*")


def test_pattern_none_checks_only_the_safety_bounds() -> None:
    assert validate_username("1abc", None) == "1abc"
    with pytest.raises(InvalidUsername):
        validate_username("../x", None)


@pytest.mark.parametrize("pattern", ["", "  ", "[a-z", "(?P<x>", 5])
def test_a_bad_pattern_is_refused_with_a_clear_error(pattern: object) -> None:
    with pytest.raises(InvalidUsernamePattern, match="pattern"):
        validate_username("juser1", pattern)  # type: ignore[arg-type]


def test_the_default_pattern_is_the_documented_one() -> None:
    assert DEFAULT_PATTERN == "[a-z_][a-z0-9_.-]{0,31}"
