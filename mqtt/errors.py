"""Typed errors of the MQTT layer; each also inherits the matching built-in."""


class ContractError(ValueError):
    """A topic or payload does not fit the MQTT contract (docs/mqtt.md)."""


class PayloadRejected(ContractError):
    """A received payload was dropped; `reason` says why in one sentence."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class NotPermitted(PermissionError):
    """A role tried to publish or subscribe outside what the contract (and the broker ACL) allows."""


class BrokerConfigError(ValueError):
    """The broker configuration cannot be written as asked."""


class BrokerStartError(RuntimeError):
    """A private Mosquitto could not be started (used by tests, bench and demo)."""
