"""Passwords and sessions for the review app.

Passwords are stored only as argon2id hashes (argon2-cffi, with its RFC 9106
low-memory profile: 64 MiB, 3 passes, 4 lanes), salted, in the self-describing
PHC string format. Hashes made by earlier versions (``scrypt$n$r$p$salt$hash``)
still verify, and the service replaces them with argon2id at the next good
login (``needs_rehash``). A login with an unknown name still runs the KDF once,
so the answer takes as long as a wrong password and says the same thing: nobody
learns which names exist.

Sessions are random 256-bit tokens. The database keeps only each token's SHA-256
(a stolen database signs nobody in), with an idle limit and an absolute end, so a
restart keeps annotators signed in and a revocation (logout, `annotators revoke`,
`annotators disable`) holds for every app process. The browser keeps the token in
an HttpOnly, SameSite=Strict cookie, Secure over HTTPS or behind a TLS proxy.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from harness.store import Store

ROLES = ("annotator", "admin")
MIN_PASSWORD = 8
LOGIN_FAILED = "wrong name or password"  # the only thing a failed login ever says
_HASHER = PasswordHasher()  # argon2id, RFC 9106 low-memory parameters


def hash_password(password: str, *, time_cost: int | None = None,
                  memory_cost: int | None = None, parallelism: int | None = None) -> str:
    """An argon2id hash in PHC format (``$argon2id$v=19$m=...``) with a fresh salt.
    The cost parameters are for tests only; by default the RFC 9106 profile."""
    if time_cost is memory_cost is parallelism is None:
        return _HASHER.hash(password)
    return PasswordHasher(time_cost=time_cost or _HASHER.time_cost,
                          memory_cost=memory_cost or _HASHER.memory_cost,
                          parallelism=parallelism or _HASHER.parallelism).hash(password)


def verify_password(password: str, stored: str) -> bool:
    """Check a password against a stored hash (argon2id, or an old scrypt one); False
    if it does not match or the hash is malformed. Both comparisons are constant-time."""
    if stored.startswith("scrypt$"):
        return _verify_scrypt(password, stored)
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether a hash is of an older scheme and should be replaced at the next login."""
    return not stored.startswith("$argon2id$")


def _verify_scrypt(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
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


def token_digest(token: str) -> str:
    """What the database stores for a session token: its SHA-256 (a 256-bit random
    token needs no slow hash; nobody can guess one from its digest)."""
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    """Token -> session, in the database (see module docstring); thread-safe.

    A session ends ``idle_timeout_s`` after its last use or ``max_age_s`` after the
    login, whichever comes first. Its last use is written at most once every
    ``touch_every_s``, so browsing does not turn into a write per request."""

    def __init__(self, db_path: str | Path, idle_timeout_s: float = 12 * 3600,
                 max_age_s: float = 7 * 24 * 3600, touch_every_s: float = 60.0) -> None:
        self.idle_timeout_s = idle_timeout_s
        self.max_age_s = max_age_s
        self.touch_every_s = touch_every_s
        self._store = Store(db_path)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._store.close()

    def create(self, name: str, role: str) -> Session:
        now = time.time()
        session = Session(secrets.token_urlsafe(32), name, role, now)
        with self._lock:
            self._store.delete_sessions(ended_before=now, idle_since=now - self.idle_timeout_s)
            self._store.add_session(token_digest(session.token), name, now, now + self.max_age_s)
        return session

    def get(self, token: str | None) -> Session | None:
        """The live session for a token, or None. Its role is left empty: the caller
        takes the account's current role."""
        if not token or len(token) > 128:
            return None
        digest, now = token_digest(token), time.time()
        with self._lock:
            row = self._store.session_row(digest)
            if row is None:
                return None
            if now >= row.expires_at or now - row.last_seen_at > self.idle_timeout_s:
                self._store.delete_session(digest)
                return None
            if now - row.last_seen_at >= self.touch_every_s:
                self._store.touch_session(digest, now)
        return Session(token, row.annotator, "", row.created_at)

    def revoke(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._store.delete_session(token_digest(token))

    def revoke_all(self, name: str) -> int:
        with self._lock:
            return self._store.delete_sessions(name)


class LoginThrottle:
    """Failed logins per name and per client within a sliding window. Past a limit a
    login is refused before the password is even checked, so guessing a password
    costs the guesser time and costs the server no KDF runs. A good login clears
    the name's count (not the client's). Thread-safe."""

    def __init__(self, per_name: int = 5, per_client: int = 20,
                 window_s: float = 900.0) -> None:
        self.limits = {"name": per_name, "client": per_client}
        self.window_s = window_s
        self._failures: dict[tuple[str, str], list[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, name: str, client: str) -> float | None:
        """Seconds until a login for ``name`` from ``client`` may be tried, or None."""
        now = time.monotonic()
        wait = 0.0
        with self._lock:
            for key in (("name", name), ("client", client)):
                recent = [t for t in self._failures.get(key, []) if now - t < self.window_s]
                self._failures[key] = recent
                if len(recent) >= self.limits[key[0]]:
                    wait = max(wait, recent[0] + self.window_s - now)
        return wait or None

    def failed(self, name: str, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in (("name", name), ("client", client)):
                self._failures.setdefault(key, []).append(now)

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(("name", name), None)
