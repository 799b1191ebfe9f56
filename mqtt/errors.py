"""Typed errors of the MQTT layer; each also inherits the matching built-in."""

from core.errors import HubError


class ContractError(HubError, ValueError):
    """A topic or payload does not fit the MQTT contract (docs/mqtt.md)."""


class PayloadRejected(ContractError):
    """A received payload was dropped; `reason` says why in one sentence."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class NotPermitted(HubError, PermissionError):
    """A role tried to publish or subscribe outside what the contract (and the broker ACL) allows."""


class BrokerConfigError(HubError, ValueError):
    """The broker configuration cannot be written as asked."""


class BrokerStartError(HubError, RuntimeError):
    """A private Mosquitto could not be started (used by tests, bench and demo)."""
