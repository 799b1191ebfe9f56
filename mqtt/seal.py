"""Sealing what leaves the household to the care organisation's age key (R11), on top of TLS.

The household's bridge forwards `share/` to the organisation's broker; the broker, and anyone
reading it, sees only `Sealed` envelopes: the household id (the topic names it anyway), the kind
and an age ciphertext. Only the organisation's service, holding the identity (secret key), opens
them. The plaintext is one `mqtt.shared` summary (or a control message such as a wipe).
"""
from __future__ import annotations

import base64
from typing import TypeVar

import pyrage
from pydantic import BaseModel, TypeAdapter, ValidationError

from core.errors import HubError
from mqtt.schemas import Sealed, SealedKind

Kind = SealedKind   # one list of kinds: the contract's
__all__ = ["Kind", "SealError", "Sealed", "identity", "recipient", "seal", "unseal"]
M = TypeVar("M", bound=BaseModel)


class SealError(HubError, ValueError):
    """A key that is not an age key, or a sealed message that does not open."""


def recipient(text: str) -> pyrage.x25519.Recipient:
    """The organisation's public key ("age1..."), or SealError in one sentence."""
    try:
        return pyrage.x25519.Recipient.from_str(text.strip())
    except (pyrage.RecipientError, ValueError) as e:
        raise SealError(f"{text.strip()[:12]!r}... is not an age public key (age1...): {e}") from None


def identity(text: str) -> pyrage.x25519.Identity:
    """The organisation's identity ("AGE-SECRET-KEY-1..."), or SealError in one sentence."""
    try:
        return pyrage.x25519.Identity.from_str(text.strip())
    except (pyrage.IdentityError, ValueError):
        raise SealError("the organisation's key file does not hold an age identity "
                        "(AGE-SECRET-KEY-1...)") from None


def seal(message: BaseModel, household: str, kind: Kind,
         to: pyrage.x25519.Recipient) -> Sealed:
    ciphertext = pyrage.encrypt(message.model_dump_json().encode(), [to])
    return Sealed(household=household, kind=kind, age=base64.b64encode(ciphertext).decode())


def unseal(sealed: Sealed, key: pyrage.x25519.Identity, model: type[M] | TypeAdapter[M]
                         ) -> M:
    """The plaintext model; SealError when it does not open or is not what it claims to be."""
    try:
        plain = pyrage.decrypt(base64.b64decode(sealed.age, validate=True), [key])
    except (pyrage.DecryptError, ValueError) as e:
        raise SealError(f"a sealed {sealed.kind} message from {sealed.household} does not open "
                        f"with this key: {e}") from None
    try:
        if isinstance(model, TypeAdapter):
            return model.validate_json(plain)
        return model.model_validate_json(plain)
    except ValidationError as e:
        raise SealError(f"a sealed {sealed.kind} message from {sealed.household} opened but is "
                        f"not a valid {sealed.kind}: {e.errors()[0]['msg']}") from None
