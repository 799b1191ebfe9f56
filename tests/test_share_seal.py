"""What leaves for the organisation opens only with its key (R11)."""
from __future__ import annotations

import uuid

import pyrage
import pytest

from mqtt.seal import Sealed, SealError, identity, recipient, seal, unseal
from mqtt.shared import SharedTimeout


def test_a_sealed_summary_opens_with_the_organisations_key_only():
    org, other = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    summary = SharedTimeout(household="hh-1", timeout_id=uuid.uuid4(), minutes=31.5, rounds=1)
    sealed = seal(summary, "hh-1", "timeout", recipient(str(org.to_public())))
    wire = sealed.model_dump_json()
    assert "31.5" not in wire and "rounds" not in wire          # the broker sees no content
    back = unseal(Sealed.model_validate_json(wire), identity(str(org)), SharedTimeout)
    assert back == summary
    with pytest.raises(SealError, match="does not open"):
        unseal(sealed, other, SharedTimeout)


def test_bad_keys_are_one_sentence():
    with pytest.raises(SealError, match="not an age public key"):
        recipient("ssh-ed25519 AAAA")
    with pytest.raises(SealError, match="does not hold an age identity"):
        identity("hello")
