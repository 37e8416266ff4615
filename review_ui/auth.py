"""Passwords and sessions for the review app.

Passwords are stored only as ``scrypt`` hashes (a memory-hard standard KDF,
from the standard library) with a random 16-byte salt per annotator, in a
self-describing string so the cost can be raised later without breaking old
hashes. Comparison is constant-time. A login with an unknown name still runs
the KDF once, so the answer takes as long as a wrong password and says the
same thing: nobody learns which names exist.

Sessions are random 256-bit tokens held in this process's memory only
(restarting the app logs everyone out); the browser keeps the token in an
HttpOnly, SameSite=Strict cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

ROLES = ("annotator", "admin")
# scrypt cost: n=2**14, r=8 needs 16 MiB and ~50 ms per hash on one core
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MIN_PASSWORD = 8
LOGIN_FAILED = "wrong name or password"  # the only thing a failed login ever says


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R,
                  p: int = SCRYPT_P) -> str:
    """``scrypt$n$r$p$salt$hash`` with a fresh random salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32,
                            maxmem=256 * 1024 * 1024)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of a password against a stored hash; False if malformed."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n),
                                r=int(r), p=int(p), dklen=len(expected),
                                maxmem=256 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


# a real hash to check against when the name is unknown, so both paths cost the same
_DECOY = hash_password(secrets.token_urlsafe(16))


def burn_decoy(password: str) -> None:
    """Spend one KDF evaluation, for logins that fail before a hash is compared."""
    verify_password(password, _DECOY)


def check_new_password(password: str) -> str | None:
    """Why a new password is refused, or None if it is acceptable."""
    if len(password) < MIN_PASSWORD:
        return f"must be at least {MIN_PASSWORD} characters"
    if password != password.strip():
        return "must not start or end with whitespace"
    return None


@dataclass(frozen=True)
class Session:
    token: str
    name: str
    role: str
    created: float

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class SessionStore:
    """Token -> session, with an idle timeout; thread-safe."""

    def __init__(self, idle_timeout_s: float = 12 * 3600) -> None:
        self.idle_timeout_s = idle_timeout_s
        self._sessions: dict[str, tuple[Session, float]] = {}
        self._lock = threading.Lock()

    def create(self, name: str, role: str) -> Session:
        session = Session(secrets.token_urlsafe(32), name, role, time.time())
        with self._lock:
            self._sessions[session.token] = (session, time.monotonic())
        return session

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        now = time.monotonic()
        with self._lock:
            found = self._sessions.get(token)
            if found is None:
                return None
            session, last_seen = found
            if now - last_seen > self.idle_timeout_s:
                del self._sessions[token]
                return None
            self._sessions[token] = (session, now)
        return session

    def revoke(self, token: str | None) -> None:
        with self._lock:
            self._sessions.pop(token or "", None)

