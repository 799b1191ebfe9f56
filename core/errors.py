"""The one error root. Every error this project raises on purpose is a `HubError`, and each also
inherits the built-in a caller would catch anyway (ValueError for bad input, OSError for a device,
PermissionError, TimeoutError, ...), so `except HubError` catches all of ours and `except ValueError`
keeps working where it did."""
from __future__ import annotations


class HubError(Exception):
    """Root of the project's errors; str(error) is one sentence a person can act on."""


class ConfigError(HubError, ValueError):
    """A configuration file (plan, sensors, panel, caller, ...) is not valid. `problems` holds one
    (field path, sentence) per problem; `source` names the file."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "config"):
        self.problems = list(problems)
        self.source = source
        super().__init__(f"{source}: {len(self.problems)} problem(s): "
                         + "; ".join(f"{p}: {m}" for p, m in self.problems))


class StorageError(HubError, OSError):
    """A durable store (SQLite on the SD card) cannot be opened, read or written."""
