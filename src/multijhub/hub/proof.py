"""Login proofs: short-lived, audience-bound, single-use tokens from the front door to a hub.

The front door creates one after it has authenticated the user and chosen the node; the
browser carries it to ``{hub}/hub/multijhub-login`` in a POST body (never in a URL); the
hub verifies it. Plain Python on top of itsdangerous (HMAC-SHA256), no JupyterHub import:
the front door imports this very file as ``multijhub.hub.proof``.

Claims: ``sub`` (user name), ``aud`` (hub node name), ``iat``/``exp`` (epoch seconds),
``jti`` (random, single use) and ``next`` (a path on the hub). Key rotation: pass the keys
newest first; ``create_proof`` signs with the first, ``verify_proof`` accepts any.
A proof is a bearer credential: never log it, never put it in a URL.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from itsdangerous import BadPayload, BadSignature, URLSafeSerializer

SALT = "multijhub.login-proof.v1"
DEFAULT_MAX_AGE = 30.0
DEFAULT_CLOCK_SKEW = 5.0
MAX_TOKEN = 4096
MIN_KEY_BYTES = 32
MAX_NEXT = 2048
_JTI = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f]")
_FIELDS = {"sub": str, "aud": str, "iat": (int, float), "exp": (int, float), "jti": str, "next": str}


class ProofKeyError(ValueError):
    """A key file is missing, unsafe (not 0600/0400), empty or too short."""


class ProofError(Exception):
    """A proof was refused. ``kind`` is one of the class attributes below; never holds the token."""

    MALFORMED = "malformed"
    FORGED = "forged"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    AUDIENCE = "wrong-audience"
    REPLAYED = "replayed"
    UNAVAILABLE = "unavailable"

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Claims:
    """A verified proof's content."""

    sub: str
    aud: str
    iat: float
    exp: float
    jti: str
    next: str


def load_keys(paths: Sequence[str]) -> list[bytes]:
    """Read the signing keys (newest first); each file regular, owner-only, >= 32 bytes."""
    if not paths:
        raise ProofKeyError("no proof key file configured")
    keys: list[bytes] = []
    for path in paths:
        try:
            info = os.stat(path)
            if not stat.S_ISREG(info.st_mode):
                raise ProofKeyError(f"proof key {path}: not a regular file")
            if info.st_mode & 0o077:
                mode = stat.S_IMODE(info.st_mode)
                raise ProofKeyError(f"proof key {path}: mode {mode:04o} is too open, expected 0600 or 0400")
            with open(path, "rb") as fh:
                key = fh.read().strip()
        except OSError as exc:
            raise ProofKeyError(f"cannot read proof key {path}: {exc.strerror}") from exc
        if len(key) < MIN_KEY_BYTES:
            raise ProofKeyError(f"proof key {path}: shorter than {MIN_KEY_BYTES} bytes")
        keys.append(key)
    return keys


def _serializer(keys: Sequence[bytes | str]) -> URLSafeSerializer:
    if not keys:
        raise ProofKeyError("no proof key")
    # itsdangerous signs with the LAST key of a list and verifies with every one.
    return URLSafeSerializer(
        list(reversed(keys)),
        salt=SALT,
        signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha256},
    )


def create_proof(
    keys: Sequence[bytes | str],
    *,
    sub: str,
    aud: str,
    next_path: str = "",
    max_age: float = DEFAULT_MAX_AGE,
    now: float | None = None,
) -> str:
    """A signed proof for ``sub`` on hub ``aud``, valid ``max_age`` seconds (signed with keys[0])."""
    now = time.time() if now is None else now
    payload = {
        "sub": sub,
        "aud": aud,
        "iat": now,
        "exp": now + max_age,
        "jti": secrets.token_urlsafe(24),
        "next": next_path,
    }
    return str(_serializer(keys).dumps(payload))


class ReplayCache:
    """Seen ``jti`` values until they expire: one hub is one process, so memory is enough.

    A restart forgets them, which reopens a proof for at most its remaining lifetime
    (``max_age`` + ``clock_skew``); a full cache refuses new proofs rather than forgetting.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def claim(self, jti: str, until: float, now: float) -> bool:
        """Record ``jti`` until ``until``; False when it was already used."""
        with self._lock:
            if len(self._seen) >= self.max_entries:
                self._seen = {k: v for k, v in self._seen.items() if v >= now}
            if jti in self._seen:
                return False
            if len(self._seen) >= self.max_entries:
                raise ProofError(ProofError.UNAVAILABLE, "replay cache is full")
            self._seen[jti] = until
            return True

    def __len__(self) -> int:
        return len(self._seen)


def _claims(payload: object) -> Claims:
    if not isinstance(payload, dict) or set(payload) != set(_FIELDS):
        raise ProofError(ProofError.MALFORMED, "unexpected claims")
    for name, kind in _FIELDS.items():
        value = payload[name]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ProofError(ProofError.MALFORMED, f"claim {name} has the wrong type")
    if not payload["sub"] or len(payload["sub"]) > 255 or not _JTI.match(payload["jti"]):
        raise ProofError(ProofError.MALFORMED, "bad subject or id")
    return Claims(
        sub=payload["sub"],
        aud=payload["aud"],
        iat=float(payload["iat"]),
        exp=float(payload["exp"]),
        jti=payload["jti"],
        next=payload["next"],
    )


def verify_proof(
    token: object,
    keys: Sequence[bytes | str],
    *,
    audience: str,
    replay: ReplayCache | None,
    max_age: float = DEFAULT_MAX_AGE,
    clock_skew: float = DEFAULT_CLOCK_SKEW,
    now: float | None = None,
) -> Claims:
    """Return the claims of a good proof; raise ProofError otherwise.

    Checked in order: shape, signature (any key), claims, audience, lifetime
    (``exp - iat <= max_age``; ``iat <= now + skew``; ``now <= exp + skew``), and
    last the single use, so a refused proof never takes a place in the cache.
    """
    now = time.time() if now is None else now
    if not audience:
        raise ProofError(ProofError.UNAVAILABLE, "this hub has no node name configured")
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN or _CONTROL.search(token):
        raise ProofError(ProofError.MALFORMED, "missing or oversized proof")
    try:
        payload = _serializer(keys).loads(token)
    except BadPayload as exc:
        raise ProofError(ProofError.MALFORMED, "undecodable payload") from exc
    except BadSignature as exc:
        raise ProofError(ProofError.FORGED, "bad signature") from exc
    claims = _claims(payload)
    if not secrets.compare_digest(claims.aud.encode(), audience.encode()):
        raise ProofError(ProofError.AUDIENCE, f"made for {claims.aud!r}, this is {audience!r}")
    if claims.exp - claims.iat > max_age or claims.exp < claims.iat:
        raise ProofError(ProofError.EXPIRED, "lifetime longer than this hub accepts")
    if claims.iat > now + clock_skew:
        raise ProofError(ProofError.NOT_YET_VALID, f"issued {claims.iat - now:.0f} s in the future")
    if now > claims.exp + clock_skew:
        raise ProofError(ProofError.EXPIRED, f"expired {now - claims.exp:.0f} s ago")
    if replay is not None and not replay.claim(claims.jti, claims.exp + clock_skew, now):
        raise ProofError(ProofError.REPLAYED, "already used")
    return claims


def safe_next(value: object, base_url: str) -> str:
    """``value`` if it is a plain local path under ``base_url`` (e.g. ``/``, ``/jhub/``), else ``""``."""
    base = "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"
    if not isinstance(value, str) or not value or len(value) > MAX_NEXT:
        return ""
    if _CONTROL.search(value) or "\\" in value or value.startswith("//") or not value.startswith(base):
        return ""
    path = value.split("?", 1)[0].split("#", 1)[0]
    if any(seg in (".", "..") for seg in path.split("/")) or "%2e" in path.lower() or "%2f" in path.lower():
        return ""
    return value
