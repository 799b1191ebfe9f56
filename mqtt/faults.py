"""Every fault class a service may report in `<service>/health` (and the hub in `state.faults`):
what it means for the household, whether they (or their installer) must act, and which light
pattern the panel shows. A fault that needs no action from the household is reported and logged,
but does not light the fault LED (R5: the panel says only what is true and useful). A code not in
this table is treated as needing action, so a new fault is never silently hidden.

Who reported a fault is the topic the broker let it arrive on (`<service>/health`, one password
and ACL entry per service), never what the payload says; a family that belongs to one service
(the modem is the caller's) is refused from any other. One service can put at most
`PER_SERVICE` faults on the panel, so no device can fill `state.faults` (issue 20, harm 5)."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from mqtt import schemas

Group = Literal["mic", "ble", "modem", "other"]
DROPPED = "faults.dropped"
PER_SERVICE = 4     # 5 other services x 4 + 4 offline + the hub's own sensors stay within 32
STATE_LIMIT = 32    # schemas.State.faults max_length
# Families only one service can know about; from anyone else such a fault is a lie.
OWNERS: dict[str, frozenset[str]] = {
    "mic.": frozenset({"hub"}), "ble.": frozenset({"hub"}), "modem.": frozenset({"caller"}),
    "service.": frozenset({"hub"}), "faults.": frozenset({"hub"}),
    # a door sensor is the hub's (BLE, a hub GPIO) or the panel's (its GPIO)
    "door.": frozenset({"hub", "panel"}),
    # the hub notices a wearable's silence; only a wearable knows its own battery
    "wearable.silent.": frozenset({"hub"}),
    "wearable.battery_": frozenset({"wearable-a", "wearable-b"}),
    # the consent filter runs as the `bridge` role (docs/care.md)
    "share.": frozenset({"bridge"}),
}


@dataclass(frozen=True)
class FaultClass:
    code: str           # a code, or a prefix ending in "." for a family (ble.tag_missing.a.1)
    group: Group        # the panel's light pattern
    action: bool        # the household or the installer must do something
    en: str
    nl: str


FAULT_CLASSES: tuple[FaultClass, ...] = (
    FaultClass("mic.not_found", "mic", True, "the microphone is not found; check its cable",
               "de microfoon is niet gevonden; controleer de kabel"),
    FaultClass("mic.unplugged", "mic", True, "the microphone stopped sending sound; check its cable",
               "de microfoon stuurt geen geluid meer; controleer de kabel"),
    FaultClass("mic.open_failed", "mic", True, "the microphone cannot be opened; call the installer",
               "de microfoon kan niet worden geopend; bel de installateur"),
    FaultClass("mic.error", "mic", True, "the microphone reports an error; call the installer",
               "de microfoon geeft een fout; bel de installateur"),
    FaultClass("mic.start_failed", "mic", True, "the microphone could not start; call the installer",
               "de microfoon kon niet starten; bel de installateur"),
    FaultClass("ble.start_failed", "ble", True, "the hub's Bluetooth could not start; call the installer",
               "de Bluetooth van de hub kon niet starten; bel de installateur"),
    FaultClass("ble.scanner_down", "ble", True, "the hub's Bluetooth has stopped; tags are not heard",
               "de Bluetooth van de hub is gestopt; labels worden niet gehoord"),
    FaultClass("ble.scanner_stalled", "ble", True, "the hub's Bluetooth hears nothing; tags are not heard",
               "de Bluetooth van de hub hoort niets; labels worden niet gehoord"),
    FaultClass("ble.panel_radio", "ble", True,
               "the panel's Bluetooth has stopped; departures are seen later; call the installer",
               "de Bluetooth van het paneel is gestopt; vertrek wordt later gezien; bel de installateur"),
    FaultClass("ble.tag_missing.", "ble", True, "a tag has not been heard for a day; check its battery",
               "een label is een dag niet gehoord; controleer de batterij"),
    FaultClass("modem.no_sim", "modem", True, "no SIM card: contact persons cannot be called",
               "geen simkaart: contactpersonen kunnen niet worden gebeld"),
    FaultClass("modem.no_network", "modem", True, "no mobile network: contact persons cannot be called",
               "geen mobiel netwerk: contactpersonen kunnen niet worden gebeld"),
    FaultClass("modem.silent", "modem", True, "the modem does not answer: contact persons cannot be called",
               "de modem antwoordt niet: contactpersonen kunnen niet worden gebeld"),
    FaultClass("modem.weak_signal", "modem", True, "weak mobile signal: calls may fail; move the hub",
               "zwak mobiel signaal: bellen kan mislukken; verplaats de hub"),
    FaultClass("modem.network_denied", "modem", True,
               "the mobile network refuses the SIM card: contact persons cannot be called; call the installer",
               "het mobiele netwerk weigert de simkaart: contactpersonen kunnen niet worden gebeld; "
               "bel de installateur"),
    FaultClass("modem.refused", "modem", True,
               "calls or texts are refused (credit or subscription): contact persons may not be reached; "
               "call the installer",
               "bellen of sms'en wordt geweigerd (tegoed of abonnement): contactpersonen worden misschien "
               "niet bereikt; bel de installateur"),
    # exit-door sensors (issue 14); the last part of the code is the door id (`hub_1`). While one
    # of these stands, presence does not rely on that door (the tags alone decide, as without one)
    FaultClass("door.silent.", "other", True,
               "a door sensor has not been heard for hours; check its battery",
               "een deursensor is al uren niet gehoord; controleer de batterij"),
    FaultClass("door.battery_low.", "other", True, "a door sensor's battery is low; replace it soon",
               "de batterij van een deursensor is bijna leeg; vervang hem binnenkort"),
    FaultClass("door.battery_dead.", "other", True, "a door sensor's battery is empty; replace it",
               "de batterij van een deursensor is leeg; vervang hem"),
    FaultClass("door.bind_key.", "other", True,
               "a door sensor's messages cannot be checked (wrong key); call the installer",
               "de berichten van een deursensor kunnen niet worden gecontroleerd (verkeerde sleutel); "
               "bel de installateur"),
    FaultClass("door.start_failed", "other", True, "a door contact could not start; call the installer",
               "een deurcontact kon niet starten; bel de installateur"),
    FaultClass("door.stuck.", "other", True,
               "a door has read open for over an hour: close it, or its wire may be broken",
               "een deur staat al meer dan een uur open: sluit hem, of de draad is misschien stuk"),
    # a partner's wearable (docs/wearable.md); the last part of `wearable.silent.<p>` is the
    # partner id, never a name. Both are for the installer or the wearer; neither says where
    FaultClass("wearable.silent.", "other", True,
               "a wearable has not been heard for an hour; charge it, or call the installer",
               "een draagbaar kastje is al een uur niet gehoord; laad het op, of bel de installateur"),
    FaultClass("wearable.battery_low", "other", True,
               "a wearable's battery is low (a few hours left); charge it now",
               "de batterij van een draagbaar kastje is bijna leeg (nog enkele uren); laad het nu op"),
    # durations run on the monotonic clock; an unsynchronised wall clock only means downtime is
    # not credited (a time-out can only get longer): nothing for the household to do
    FaultClass("clock.unsynchronised", "other", False, "the clock is not set from the network yet",
               "de klok is nog niet via het netwerk gezet"),
    # the SD card is full, read-only or worn out: inputs are kept by the broker, the time-out
    # runs on from memory, and the watchdog is no longer fed
    FaultClass("storage.", "other", True, "the hub cannot save; the time-out goes on; call the installer",
               "de hub kan niet opslaan; de time-out loopt door; bel de installateur"),
    FaultClass("service.offline", "other", True, "a part of the hub is not running; call the installer",
               "een deel van de hub werkt niet; bel de installateur"),
    # the consent filter has no organisation key: nothing leaves, which is safe, so the household
    # need not act (the installer sees it in `doctor` and the organisation in share/status)
    FaultClass("share.no_key", "other", False,
               "nothing is shared with the care organisation: its key is not set up",
               "er wordt niets gedeeld met de zorgorganisatie: de sleutel ervan is niet ingesteld"),
    # the kept faults of that service light what they need; this one only says the list is cut
    FaultClass(DROPPED, "other", False, "more faults were reported than fit; the most important are shown",
               "er zijn meer storingen gemeld dan passen; de belangrijkste worden getoond"),
)


def fault_class(code: str) -> FaultClass | None:
    for fc in FAULT_CLASSES:
        if code == fc.code or (fc.code.endswith(".") and code.startswith(fc.code)):
            return fc
    return None


def needs_action(code: str) -> bool:
    """Whether this fault lights the panel's fault LED: unknown codes do."""
    fc = fault_class(code)
    return True if fc is None else fc.action


def light_group(code: str, service: str | None = None) -> Group:
    """The panel's pattern for a fault: its class's group; a service that is offline shows the
    pattern of what it does (the caller: calls cannot go out)."""
    if code == "service.offline" and service == "caller":
        return "modem"
    fc = fault_class(code)
    if fc is not None:
        return fc.group
    head = code.split(".")[0]
    return head if head in ("mic", "ble", "modem") else "other"  # type: ignore[return-value]


def owners(code: str) -> frozenset[str] | None:
    """The services that may report this code; None: any service."""
    for family, services in OWNERS.items():
        if code.startswith(family):
            return services
    return None


def attribute(service: str, faults: Iterable[schemas.Fault]) -> tuple[list[schemas.Fault], list[str]]:
    """A service's reported faults under the name of the topic they came on, without the codes
    that belong to another service: (kept, refused codes)."""
    kept: list[schemas.Fault] = []
    refused: list[str] = []
    for f in faults:
        allowed = owners(f.code)
        if allowed is not None and service not in allowed:
            refused.append(f.code)
        else:
            kept.append(f if f.service == service else f.model_copy(update={"service": service}))
    return kept, refused


def _importance(f: schemas.Fault) -> tuple[bool, datetime, str]:
    # faults that need action first, then the oldest (a long-standing fault is the real one)
    return (not needs_action(f.code), f.since, f.code)


def bounded(faults: Sequence[schemas.Fault], limit: int, service: str) -> list[schemas.Fault]:
    """At most `limit` faults: the most important `limit - 1` and one `faults.dropped` (under
    `service`) saying how many more there were. The result only changes when the faults do."""
    if len(faults) <= limit:
        return list(faults)
    ranked = sorted(faults, key=_importance)
    kept, dropped = ranked[:limit - 1], ranked[limit - 1:]
    kept.append(schemas.Fault(code=DROPPED, service=service,  # type: ignore[arg-type]
                              since=min(f.since for f in dropped),
                              reason=f"{len(dropped)} more fault(s) from {service} not shown"))
    return kept
