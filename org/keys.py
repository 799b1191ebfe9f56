"""The organisation's age key pair (R11): the identity opens what households seal to the
organisation; the public key goes to every household's installer (their plan's `org_key`).

The key file is `age-keygen`'s format (comment lines, then one AGE-SECRET-KEY-1... line), so
`age -d -i FILE` opens the same messages. It is created 0600 and refused when others may read it:
whoever reads it reads every household's shared data.

    python -m org.keys --out /etc/timeout-org/age.key     # prints the public key (age1...)
"""
from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyrage

from mqtt.seal import SealError, identity


class KeyFileError(SealError):
    """The organisation's key file is missing, readable by others, or not an age identity."""


def create_key(path: Path, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> str:
    """Write a new identity to `path` (0600, never over an existing key); the public key."""
    path = Path(path)
    ident = pyrage.x25519.Identity.generate()
    public = str(ident.to_public())
    text = (f"# created: {clock().astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
            f"# public key: {public}\n{ident}\n")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists: a new key would lock out what households "
                           "already sealed to the old one; remove it first if that is intended"
                           ) from None
    except OSError as e:
        raise KeyFileError(f"cannot create {path}: {e.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return public


def load_key(path: Path) -> pyrage.x25519.Identity:
    """The identity in `path`; KeyFileError in one sentence when it cannot or must not be used."""
    path = Path(path)
    try:
        st = path.stat()
        text = path.read_text()
    except FileNotFoundError:
        raise KeyFileError(f"the organisation's key file {path} does not exist "
                           "(create it with `python -m org.keys --out FILE`)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise KeyFileError(f"the organisation's key file {path} cannot be read: {e}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"the organisation's key file {path} may be read by others "
                           f"(mode {stat.S_IMODE(st.st_mode):o}): chmod 600 it")
    keys = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if len(keys) != 1:
        raise KeyFileError(f"the organisation's key file {path} must hold exactly one age "
                           f"identity, not {len(keys)}")
    return identity(keys[0])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m org.keys",
                                description="Create the care organisation's age key pair; prints "
                                            "the public key to give to the households' installer.")
    p.add_argument("--out", type=Path, required=True, help="the key file to create (0600)")
    args = p.parse_args(argv)
    try:
        print(create_key(args.out))
    except KeyFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
