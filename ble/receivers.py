"""A second BLE receiver in the home (issue 14, round 3): the panel's Pi scans for the household's
tags with its own radio and sends `panel/tags_heard` summaries (mqtt.schemas.TagsHeard) every few
seconds. Here a summary becomes the engine's input; docs/ble.md "A second receiver" says why and
what it is in practice."""
from __future__ import annotations

from ble.presence import PresenceEngine, Transition
from mqtt.schemas import TagsHeard


def apply_summary(engine: PresenceEngine, now: float, receiver: str, msg: TagsHeard) -> list[Transition]:
    """Feed one summary received at `now` (the engine's clock): each partner's last advert was
    `ago_s` before the message was made; transit time on the household's broker is neglected (it
    is well under the 15 s the fusion waits)."""
    heard = [(h.partner, now - h.ago_s, float(h.rssi)) for h in msg.heard]
    return engine.tags_heard(now, receiver, msg.scanning, heard)


def forget_receiver(engine: PresenceEngine, receiver: str) -> None:
    """The receiver went away (the panel's last will): it stops counting at once, not only after
    the fusion's `rx_trust` without a report, and its silence counts from its next report."""
    engine.fusion.rx_seen.pop(receiver, None)
    engine.fusion.rx_up.pop(receiver, None)
