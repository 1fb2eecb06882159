"""The login proof shared by the front door and the hubs: create, verify, refuse."""

from __future__ import annotations

import json

import pytest
from hubkeys import KEY, OLD_KEY, write_key
from itsdangerous import URLSafeSerializer

from multijhub.hub.proof import (
    SALT,
    ProofError,
    ProofKeyError,
    ReplayCache,
    _serializer,
    create_proof,
    load_keys,
    safe_next,
    verify_proof,
)

NOW = 1_800_000_000.0


def make(keys=(KEY,), *, sub="juser1", aud="hub1", next_path="/hub/spawn", max_age=30.0, now=NOW):
    return create_proof(list(keys), sub=sub, aud=aud, next_path=next_path, max_age=max_age, now=now)


def check(token, keys=(KEY,), *, audience="hub1", replay=None, now=NOW, **kw):
    return verify_proof(token, list(keys), audience=audience, replay=replay, now=now, **kw)


def refused(kind, token, **kw):
    with pytest.raises(ProofError) as info:
        check(token, **kw)
    assert info.value.kind == kind
    return info.value


def test_round_trip_claims():
    claims = check(make(), replay=ReplayCache())
    assert (claims.sub, claims.aud, claims.next) == ("juser1", "hub1", "/hub/spawn")
    assert (claims.iat, claims.exp) == (NOW, NOW + 30)
    assert len(claims.jti) >= 16


def test_token_is_url_safe_and_holds_no_key():
    token = make()
    assert all(c.isalnum() or c in "-_." for c in token)
    assert KEY.decode() not in token


def test_every_proof_has_its_own_id():
    a, b = check(make()), check(make())
    assert a.jti != b.jti


def test_replay_is_refused():
    cache = ReplayCache()
    token = make()
    check(token, replay=cache)
    err = refused(ProofError.REPLAYED, token, replay=cache, now=NOW + 1)
    assert token not in str(err)


def test_replay_cache_forgets_only_after_expiry():
    cache = ReplayCache(max_entries=2)
    assert cache.claim("a" * 16, until=NOW + 10, now=NOW)
    assert cache.claim("b" * 16, until=NOW + 10, now=NOW)
    with pytest.raises(ProofError) as info:  # full of live ids: refuse, never forget
        cache.claim("c" * 16, until=NOW + 10, now=NOW + 5)
    assert info.value.kind == ProofError.UNAVAILABLE
    assert cache.claim("c" * 16, until=NOW + 30, now=NOW + 11)  # the old ones expired
    assert not cache.claim("c" * 16, until=NOW + 30, now=NOW + 12)


def test_refused_proofs_take_no_place_in_the_replay_cache():
    cache = ReplayCache()
    refused(ProofError.AUDIENCE, make(aud="hub2"), replay=cache)
    refused(ProofError.EXPIRED, make(now=NOW - 100), replay=cache)
    assert len(cache) == 0


def test_expired():
    token = make()
    assert check(token, now=NOW + 30 + 5).sub == "juser1"  # within skew after exp
    refused(ProofError.EXPIRED, token, now=NOW + 30 + 5.01)
    refused(ProofError.EXPIRED, token, now=NOW + 3600)


def test_lifetime_longer_than_the_hub_accepts():
    refused(ProofError.EXPIRED, make(max_age=3600), max_age=30)
    refused(ProofError.EXPIRED, make(max_age=-5))


@pytest.mark.parametrize(
    ("offset", "ok"),
    [(-5.0, True), (0.0, True), (4.99, True), (5.0, True), (5.01, False), (60.0, False)],
)
def test_clock_skew_bound_for_a_front_door_clock_ahead(offset, ok):
    token = make(now=NOW + offset)  # issued by a clock `offset` s ahead of the hub
    if ok:
        assert check(token, clock_skew=5.0).sub == "juser1"
    else:
        refused(ProofError.NOT_YET_VALID, token, clock_skew=5.0)


def test_clock_skew_bound_for_a_front_door_clock_behind():
    token = make(now=NOW - 35)  # exp = NOW - 5
    assert check(token, clock_skew=5.0).sub == "juser1"
    refused(ProofError.EXPIRED, token, clock_skew=4.0)


def test_zero_skew_is_strict():
    token = make()
    refused(ProofError.NOT_YET_VALID, token, now=NOW - 0.5, clock_skew=0)
    refused(ProofError.EXPIRED, token, now=NOW + 30.5, clock_skew=0)


def test_wrong_audience():
    err = refused(ProofError.AUDIENCE, make(aud="hub2"), audience="hub1")
    assert "hub2" in err.message


def test_hub_without_node_name_refuses():
    refused(ProofError.UNAVAILABLE, make(aud=""), audience="")


def test_forged_with_another_key():
    refused(ProofError.FORGED, make(keys=(b"x" * 48,)))


def test_forged_payload_change():
    token = make()
    payload, _, sig = token.rpartition(".")
    other = make(sub="root")
    refused(ProofError.FORGED, other.rpartition(".")[0] + "." + sig)
    refused(ProofError.FORGED, payload + "." + sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB"))


def test_forged_with_another_salt():
    other = URLSafeSerializer(KEY, salt="something else").dumps({"sub": "juser1"})
    refused(ProofError.FORGED, other)


@pytest.mark.parametrize("token", ["", "x", "a.b", "." * 10, "x" * 5000, "ab\ncd", None, 12, b"bytes"])
def test_malformed(token):
    with pytest.raises(ProofError) as info:
        check(token)
    assert info.value.kind in (ProofError.MALFORMED, ProofError.FORGED)


def _signed(payload):
    return _serializer([KEY]).dumps(payload)


@pytest.mark.parametrize(
    "change",
    [
        {"sub": ""},
        {"sub": 5},
        {"iat": "now"},
        {"exp": True},
        {"jti": "short"},
        {"jti": "../../etc/passwd-xxxxxxxx"},
        {"extra": 1},
        {"next": None},
    ],
)
def test_signed_but_malformed_claims(change):
    payload = {"sub": "juser1", "aud": "hub1", "iat": NOW, "exp": NOW + 30, "jti": "j" * 32, "next": ""}
    payload.update(change)
    refused(ProofError.MALFORMED, _signed(payload))


def test_signed_non_object_payload():
    refused(ProofError.MALFORMED, _signed(["juser1", "hub1"]))


def test_rotation_create_uses_first_verify_accepts_all():
    old = make(keys=(OLD_KEY,))
    new = make(keys=(KEY, OLD_KEY))
    rotated = (KEY, OLD_KEY)
    assert check(old, keys=rotated).sub == "juser1"
    assert check(new, keys=rotated).sub == "juser1"
    assert check(new, keys=(KEY,)).sub == "juser1"  # signed with the first key
    refused(ProofError.FORGED, new, keys=(OLD_KEY,))
    refused(ProofError.FORGED, old, keys=(KEY,))  # the old key retired


def test_load_keys(tmp_path, key_files):
    assert load_keys(key_files) == [KEY, OLD_KEY]
    with pytest.raises(ProofKeyError, match="too open"):
        load_keys([write_key(tmp_path / "open", KEY, 0o644)])
    with pytest.raises(ProofKeyError, match="shorter"):
        load_keys([write_key(tmp_path / "short", b"abc")])
    with pytest.raises(ProofKeyError, match="cannot read"):
        load_keys([str(tmp_path / "missing")])
    with pytest.raises(ProofKeyError, match="not a regular file"):
        load_keys([str(tmp_path)])
    with pytest.raises(ProofKeyError, match="no proof key"):
        load_keys([])


def test_key_errors_never_show_the_key(tmp_path):
    with pytest.raises(ProofKeyError) as info:
        load_keys([write_key(tmp_path / "open", KEY, 0o640)])
    assert KEY.decode() not in str(info.value)


def test_payload_is_json_with_the_documented_claims():
    raw = _serializer([KEY]).loads(make())
    assert sorted(raw) == ["aud", "exp", "iat", "jti", "next", "sub"]
    json.dumps(raw)
    assert SALT.startswith("multijhub.")


@pytest.mark.parametrize(
    ("value", "base", "expected"),
    [
        ("/hub/spawn", "/", "/hub/spawn"),
        ("/hub/spawn?next=%2Fuser%2Fjuser1%2Flab", "/", "/hub/spawn?next=%2Fuser%2Fjuser1%2Flab"),
        ("/jhub/hub/spawn", "/jhub/", "/jhub/hub/spawn"),
        ("/jhub/user/juser1/lab", "/jhub", "/jhub/user/juser1/lab"),
        ("/other/hub/spawn", "/jhub/", ""),
        ("/jhubx/hub", "/jhub/", ""),
        ("//evil.example/hub", "/", ""),
        ("https://evil.example/", "/", ""),
        ("/\\evil.example", "/", ""),
        ("/hub/../../etc", "/", ""),
        ("/hub/%2e%2e/x", "/", ""),
        ("/hub/spawn\r\nSet-Cookie: x", "/", ""),
        ("javascript:alert(1)", "/", ""),
        ("hub/spawn", "/", ""),
        ("", "/", ""),
        (None, "/", ""),
        ("/" + "a" * 3000, "/", ""),
    ],
)
def test_safe_next(value, base, expected):
    assert safe_next(value, base) == expected
