"""Typed modem errors; each also inherits the matching built-in."""
from __future__ import annotations

from core.errors import HubError


class ModemError(HubError, RuntimeError):
    """The modem answered ERROR or could not do what was asked."""


class CmeError(ModemError):
    """+CME ERROR / +CMS ERROR with the modem's code."""

    def __init__(self, kind: str, code: str, command: str):
        super().__init__(f"+{kind} ERROR: {code} (after {command})")
        self.kind, self.code, self.command = kind, code, command


class ModemTimeout(ModemError, TimeoutError):
    """No final result within the command's time limit (a silent or resetting modem)."""


class ModemParseError(ModemError, ValueError):
    """A reply that does not have the expected form (garbled line)."""


class ModemGone(ModemError, ConnectionError):
    """The serial port is closed or unplugged."""
