"""The care workers' accounts for the web page: a name and an scrypt hash per worker, in one JSON
file readable by the web service only (mode 0600). No password is ever stored or logged."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
MIN_PASSWORD = 12
# scrypt's cost: about 16 MB and a few tens of milliseconds per log-in on a server
N, R, P = 2 ** 14, 8, 1


class AccountsError(ValueError):
    """A wrong name, a short password, an unreadable file: the message is one sentence."""


@dataclass(frozen=True)
class _Hash:
    salt: str
    hash: str
    n: int = N
    r: int = R
    p: int = P


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                          maxmem=64 * 1024 * 1024, dklen=32)


class Accounts:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        # an unknown name costs the same scrypt as a known one: the time does not tell names
        self._dummy = _Hash(secrets.token_hex(16), secrets.token_hex(32))

    def _load(self) -> dict[str, _Hash]:
        if not self.path.exists():
            return {}
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return {name: _Hash(**h) for name, h in raw["workers"].items()}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise AccountsError(f"{self.path} cannot be read as the care workers' accounts "
                                f"({e})") from None

    def _save(self, workers: dict[str, _Hash]) -> None:
        body = json.dumps({"workers": {n: h.__dict__ for n, h in sorted(workers.items())}},
                          indent=1)
        tmp = self.path.with_name(self.path.name + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._load())

    def set_password(self, name: str, password: str) -> None:
        """Add a worker, or give an existing one a new password."""
        if not NAME_RE.fullmatch(name):
            raise AccountsError(f"{name!r} is not a worker name: 2-32 of a-z, 0-9, '.', '_', '-'")
        if len(password) < MIN_PASSWORD:
            raise AccountsError(f"the password needs at least {MIN_PASSWORD} characters")
        salt = secrets.token_bytes(16)
        entry = _Hash(salt.hex(), _scrypt(password, salt, N, R, P).hex())
        with self._lock:
            workers = self._load()
            workers[name] = entry
            self._save(workers)

    def remove(self, name: str) -> bool:
        with self._lock:
            workers = self._load()
            gone = workers.pop(name, None) is not None
            if gone:
                self._save(workers)
            return gone

    def verify(self, name: str, password: str) -> bool:
        with self._lock:
            workers = self._load()
        h = workers.get(name, self._dummy)
        got = _scrypt(password, bytes.fromhex(h.salt), h.n, h.r, h.p)
        return hmac.compare_digest(got, bytes.fromhex(h.hash)) and name in workers
