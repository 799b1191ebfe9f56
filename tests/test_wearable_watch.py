"""The hub's supervision of a partner's wearable (issue 17): a wearable heard over the home link
counts as its partner being around (the tag supervision's evidence, like another tag heard); one
reached through the organisation does not; a silent one is a neutral fault on the panel."""
from __future__ import annotations

from core.clock import ManualClock
from firmware.hub.wearable_watch import WearableWatch
from mqtt import schemas
from tests.conftest import wait_until
from tests.test_hub_service import client, make_hub


def _beat(link: str) -> schemas.Heartbeat:
    return schemas.Heartbeat(battery=80, gnss=False, link=link)


def test_a_wearable_heard_at_home_counts_as_its_partner_around(home, tmp_path):
    clock = ManualClock()
    hub = make_hub(home, tmp_path, clock)
    watch = WearableWatch(hub, check_every_s=0.05).start()
    wb = client(home, tmp_path, "wearable-b")
    wb.start()
    try:
        assert wb.wait_subscribed(5) and hub.bus.wait_subscribed(5)
        assert not watch.around("b")               # nothing heard yet: no evidence
        wb.publish("partner/b/heartbeat", _beat("home"))
        assert wait_until(lambda: watch.around("b"), 5)
        wb.publish("partner/b/heartbeat", _beat("organisation"))
        assert wait_until(lambda: watch.link("b") == "organisation", 5)
        assert not watch.around("b")               # away from home Wi-Fi: not evidence of home
        wb.publish("partner/b/heartbeat", _beat("home"))
        assert wait_until(lambda: watch.around("b"), 5)
        clock.advance(3601)                        # an hour without a heartbeat
        watch.check()
        assert watch.link("b") == "silent" and not watch.around("b")
        assert wait_until(lambda: any(f.code == "wearable.silent.b" for f in hub.faults()), 5)
    finally:
        watch.stop()
        wb.stop()
        hub.stop()
