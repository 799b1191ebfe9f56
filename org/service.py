"""The care organisation's service (docs/care.md): on the organisation's broker it opens what the
households' consent filters sealed to the organisation's key, keeps the summaries per household
in the OrgStore, applies consent changes and wipes, prunes past each household's retention, and
tells each household what the organisation read of it (`mirror_access`, R6).

It reads only `<prefix>/<household>/share/summary` and writes only `<prefix>/<household>/org/access`
(the broker's ACL for the `care` account, mqtt/org_broker.py). The topic names the household:
a household's bridge can write only under its own prefix, so a sealed message that claims
another household is refused. Whatever arrives that does not open, does not validate or comes
from a household the organisation does not know is counted and logged with its reason, never
stored, never a crash.

    python -m org.service --config DIR/service.toml --key age.key --db org.sqlite3
    python -m org.service ... --db 'postgresql://care@db.example/care?passfile=/etc/timeout-org/pgpass'
"""
from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import sys
import threading
import tomllib
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import paho.mqtt.client as paho
import pyrage
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BaseModel, ValidationError

from mqtt import contract
from mqtt.errors import ContractError
from mqtt.org_broker import ORG_ACCESS
from mqtt.schemas import AccessNotice, Sealed, now_utc
from mqtt.seal import SealError, unseal
from mqtt.shared import ConsentChange, SharedTimeout, SharedTopics, Wipe, restrict
from org.keys import KeyFileError, load_key
from org.store import Access, OrgStore, db_location

log = logging.getLogger("org.service")

SUMMARY = "share/summary"
SESSION_EXPIRY_S = 14 * 24 * 3600   # what households sent while the service was down waits
_NOTICE_IDS = uuid.UUID("5d1c3f0e-18a0-4c1e-9a18-0a9c0ce55018")   # namespace of notice ids
SERVICE_WORKER = "org.service"       # the account id in the access log for the service's own acts
_PLAIN: dict[str, type[BaseModel]] = {"timeout": SharedTimeout, "topics": SharedTopics,
                                       "consent": ConsentChange, "wipe": Wipe}


class ServiceConfigError(ValueError):
    """The service's configuration file cannot be used; one sentence."""


@dataclass(frozen=True)
class ServiceLink:
    """service.toml, written by `org-broker-config` next to the broker's configuration."""

    host: str
    port: int
    prefix: str
    cafile: Path
    username: str
    households: Path
    password: str | None = field(default=None, repr=False)
    certfile: Path | None = None
    keyfile: Path | None = None


def load_link(path: Path) -> ServiceLink:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ServiceConfigError(f"the service's file {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ServiceConfigError(f"the service's file {path} is not readable TOML: {e}") from None
    try:
        def opt(key: str) -> Path | None:
            return Path(data[key]) if key in data else None
        link = ServiceLink(host=str(data["host"]), port=int(data["port"]),
                           prefix=str(data["prefix"]), cafile=Path(data["cafile"]),
                           username=str(data["username"]), households=Path(data["households"]),
                           password=data.get("password"), certfile=opt("certfile"),
                           keyfile=opt("keyfile"))
    except KeyError as e:
        raise ServiceConfigError(f"the service's file {path} lacks {e.args[0]!r}") from None
    except (TypeError, ValueError) as e:
        raise ServiceConfigError(f"the service's file {path} has a wrong value: {e}") from None
    if link.password is None and link.certfile is None:
        raise ServiceConfigError(f"the service's file {path} gives neither a password nor a "
                                 "client certificate")
    return link


class KnownHouseholds:
    """The organisation's households (the broker's households.json), reread when it changes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._stamp: float | None = None
        self._known: frozenset[str] = frozenset()

    def __contains__(self, household: object) -> bool:
        try:
            stamp = self.path.stat().st_mtime
        except OSError:
            return False
        if stamp != self._stamp:
            known = self.snapshot()
            if known is None:
                return False
            self._known, self._stamp = known, stamp
        return household in self._known

    def snapshot(self) -> frozenset[str] | None:
        """The households now; None when the list cannot be read (then nothing is wiped)."""
        try:
            return frozenset(json.loads(self.path.read_text())["households"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.error("the households list %s cannot be read: %s", self.path, e)
            return None


class OrgService:
    """`handle()` is the whole decision for one message (tests and the bench call it too);
    `start()` connects it to the organisation's broker."""

    def __init__(self, store: OrgStore, key: pyrage.x25519.Identity, *,
                 known: Callable[[str], bool], prefix: str = "fleet",
                 clock: Callable[[], datetime] = now_utc,
                 link: ServiceLink | None = None, registry: KnownHouseholds | None = None):
        self.store, self.key, self.known, self.prefix = store, key, known, prefix
        self.registry = registry   # households.json: a household removed from it has left
        self.clock, self.link = clock, link
        self.counts: Counter[str] = Counter()
        self.last_refusal: str | None = None     # the fault state: the newest reason, until cleared
        self._pruned_on: date | None = None
        self._stop = threading.Event()
        self._client: paho.Client | None = None
        self._nudge = threading.Event()      # an access-log entry to tell
        self.connected = threading.Event()

    # -- one message ----------------------------------------------------------------------------
    def handle(self, topic: str, payload: bytes) -> str:
        """What was done with one message on `<prefix>/<household>/share/summary`: "stored",
        "consent", "wipe", or "refused: <reason>" (counted and logged)."""
        parts = topic.split("/")
        if len(parts) != 4 or parts[0] != self.prefix or "/".join(parts[2:]) != SUMMARY:
            return self._refuse("topic", f"a message on {topic!r}, which is not a household's "
                                         f"{SUMMARY}")
        household = parts[1]
        if not self.known(household):
            return self._refuse("unknown_household",
                                f"a sealed message from {household!r}, a household the "
                                "organisation does not know")
        try:
            sealed = Sealed.model_validate_json(payload)
        except ValidationError as e:
            return self._refuse("malformed", f"a message from {household} is not a sealed "
                                             f"summary: {e.errors()[0]['msg']}")
        if sealed.household != household:
            return self._refuse("wrong_household", f"a sealed message on {household}'s topic "
                                                   f"claims household {sealed.household!r}")
        model = _PLAIN.get(sealed.kind)
        if model is None:
            return self._refuse("kind", f"a sealed {sealed.kind} message from {household} is not "
                                        "for the organisation")
        try:
            plain: BaseModel = unseal(sealed, self.key, model)
        except SealError as e:
            return self._refuse("not_open", str(e))
        claimed = getattr(plain, "household", None)
        if claimed != household:
            return self._refuse("wrong_household", f"a sealed {sealed.kind} from {household} "
                                                   f"speaks of household {claimed!r}")
        try:
            return self._apply(household, plain)
        except (sqlite3.Error, OSError) as e:
            self.counts["store_failed"] += 1
            self.last_refusal = f"the organisation's store cannot be written: {e}"
            log.error("%s", self.last_refusal)
            raise

    def _apply(self, household: str, plain: BaseModel) -> str:
        if isinstance(plain, (SharedTimeout, SharedTopics)):
            consent, _ = self.store.consent_of(household)
            # a summary sealed before a withdrawal the organisation already applied
            kept = restrict(plain, consent) if consent is not None else plain
            if kept is not None:
                self.store.put(kept)
            self.counts["stored" if kept is not None else "withheld"] += 1
            return "stored" if kept is not None else "withheld"
        if isinstance(plain, ConsentChange):
            items = [r for s in self.store.summaries(household) if (r := restrict(s, plain.consent))]
            self.store.replace_all(household, items)
            self.store.set_consent(household, plain.consent, plain.retention_days, self.clock())
            self.counts["consent"] += 1
            log.info("%s: consent changed (%s withdrew %s); %d summaries kept", household,
                     plain.partner or "the installer", ", ".join(plain.withdrawn) or "nothing",
                     len(items))
            self.store.log_access(SERVICE_WORKER, household, "consent", True, self.clock())
            self._nudge.set()
            return "consent"
        if not isinstance(plain, Wipe):   # the kinds are checked before; never store the unknown
            return self._refuse("kind", f"{household}: a sealed {type(plain).__name__} is not "
                                        "a summary, consent change or wipe")
        n = self.store.wipe(household)
        self.counts["wipe"] += 1
        log.info("%s: the household's shared data wiped (%d summaries)", household, n)
        self.store.log_access(SERVICE_WORKER, household, "wipe", True, self.clock())
        self._nudge.set()
        return "wipe"

    def _refuse(self, what: str, reason: str) -> str:
        self.counts[f"refused:{what}"] += 1
        self.last_refusal = reason
        log.warning("refused: %s", reason)
        return f"refused: {reason}"

    # -- retention ------------------------------------------------------------------------------
    def prune_due(self) -> int:
        """Once a day (by the injectable clock): drop what is older than each household's
        retention days. Returns how many summaries were dropped now."""
        now = self.clock()
        if self._pruned_on == now.date():
            return 0
        self._pruned_on = now.date()
        dropped = 0
        for h in self.store.households():
            _, days = self.store.consent_of(h)
            dropped += self.store.prune(h, days, now)
        self.counts["pruned"] += dropped
        if dropped:
            log.info("retention: %d summaries past their household's retention dropped", dropped)
        return dropped

    def alive(self) -> bool:
        """Its own threads run (the systemd watchdog is fed only then); the broker may be away:
        the client reconnects by itself and nothing is lost meanwhile."""
        return bool(getattr(self, "_threads", None)) and all(t.is_alive() for t in self._threads)

    def wipe_departed(self) -> list[str]:
        """A household removed from the organisation (`org-broker-config --remove`) has left: its
        shared data goes at once (R11), and the organisation's access log keeps that it was
        wiped. A households list that cannot be read wipes nothing."""
        known = self.registry.snapshot() if self.registry is not None else None
        if known is None:
            return []
        wiped = []
        for h in self.store.households():
            if h in known or (self.store.consent_of(h)[0] is None and not self.store.summaries(h)):
                continue
            n = self.store.wipe(h)
            self.store.log_access(SERVICE_WORKER, h, "wipe", True, self.clock())
            self.counts["wipe"] += 1
            log.info("%s left the organisation: its shared data wiped (%d summaries)", h, n)
            wiped.append(h)
        return wiped

    # -- the access mirror (R6) -----------------------------------------------------------------
    def mirror_access(self, entry: Access | None = None) -> None:
        """The hook for the care worker's web page: an entry was written to the access log
        (`OrgStore.log_access`); tell its household now instead of within a second."""
        self._nudge.set()

    def mirror_pending(self) -> int:
        """Tell each household, in order, the access-log entries about it not told yet: an
        AccessNotice on its `org/access`, which its bridge brings into the household's access log.
        The log in the store is the outbox (whichever process wrote it): an entry counts as told
        once the broker acknowledged it (QoS 1; a household whose bridge is down gets it when it
        is back). Returns how many were told now; stops at the first the broker did not take."""
        told = 0
        for seq, entry in self.store.unmirrored():
            sent = self._tell(seq, entry)
            if sent is False:
                break
            self.store.mark_mirrored(seq)
            told += bool(sent)
        return told

    def _tell(self, seq: int, entry: Access) -> bool | None:
        """True: acknowledged; False: not now (retry later); None: can never be told (logged)."""
        try:
            contract.check_household(entry.household)
            # the same id when told again after a crash: the household drops the repeat
            notice = AccessNotice(id=uuid.uuid5(_NOTICE_IDS, f"{entry.household}/{seq}/{entry.ts}"),
                                  ts=entry.ts, worker=entry.worker, action=entry.action,
                                  allowed=entry.allowed)
        except (ValidationError, ContractError) as e:
            self.counts["mirror_refused"] += 1
            log.error("an access entry for %r cannot be told to a household: %s",
                      entry.household, e)
            return None
        if not self.known(entry.household):
            self.counts["mirror_refused"] += 1
            log.error("an access entry for %r is not told: the organisation does not know that "
                      "household", entry.household)
            return None
        client = self._client
        if client is None or not self.connected.is_set():
            return False
        info = client.publish(f"{self.prefix}/{entry.household}/{ORG_ACCESS}",
                              notice.model_dump_json().encode(), qos=1)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            return False
        try:
            info.wait_for_publish(10)
        except (RuntimeError, ValueError):
            return False
        if info.is_published():
            self.counts["mirrored"] += 1
            return True
        return False

    # -- the broker link ------------------------------------------------------------------------
    def start(self) -> OrgService:
        global _running
        link = self.link
        if link is None:
            raise ServiceConfigError("the service needs its broker link (service.toml) to start")
        self._stop.clear()
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=link.username,
                        protocol=paho.MQTTv5, manual_ack=True)
        if link.certfile is not None:
            c.tls_set(ca_certs=str(link.cafile), certfile=str(link.certfile),
                      keyfile=str(link.keyfile))
        else:
            c.username_pw_set(link.username, link.password)
            c.tls_set(ca_certs=str(link.cafile))
        c.reconnect_delay_set(1, 10)
        c.on_connect = self._on_connect
        c.on_disconnect = lambda *a: self.connected.clear()
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        c.connect_async(link.host, link.port, 30, clean_start=False, properties=props)
        c.loop_start()
        self._client = c
        _running = self
        self._threads = [threading.Thread(target=self._daily, name="org-retention", daemon=True),
                         threading.Thread(target=self._mirror, name="org-access-mirror", daemon=True)]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        global _running
        self._stop.set()
        self._nudge.set()
        if _running is self:
            _running = None
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def _daily(self) -> None:
        while not self._stop.wait(0 if self._pruned_on is None else 60):
            try:
                self.prune_due()
                self.wipe_departed()
            except (sqlite3.Error, OSError) as e:
                log.error("retention not applied now: %s", e)

    def _mirror(self) -> None:
        while not self._stop.is_set():
            self._nudge.wait(1.0)   # the web page may write from another process: poll as well
            self._nudge.clear()
            try:
                self.mirror_pending()
            except (sqlite3.Error, OSError) as e:
                log.error("the access log cannot be read to tell the households: %s", e)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("the organisation's broker refused the service: %s", reason_code)
            return
        client.subscribe(f"{self.prefix}/+/{SUMMARY}", qos=1)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if any(rc.is_failure for rc in reason_codes):
            log.error("the organisation's broker refused the service's subscription: %s",
                      reason_codes)
            return
        self.connected.set()   # ready: connected and reading every household's summaries

    def _on_message(self, client, userdata, msg: paho.MQTTMessage) -> None:
        try:
            self.handle(msg.topic, bytes(msg.payload))
        except (sqlite3.Error, OSError):
            return   # not acknowledged: the broker delivers it again after a reconnect
        except Exception:   # a defect must not stop the service; the message is not lost
            self.counts["failed"] += 1
            log.exception("a message on %s could not be handled", msg.topic)
            return
        client.ack(msg.mid, msg.qos)


_running: OrgService | None = None


def mirror_access(entry: Access | None = None) -> None:
    """The hook for the care worker's web page (org/web.py), called after each
    `OrgStore.log_access`: a service running in this process tells the household at once. Any
    other running service tells it within a second anyway: it reads the same store's access log."""
    service = _running
    if service is not None:
        service.mirror_access(entry)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m org.service",
                                description="The care organisation's service (docs/care.md).")
    p.add_argument("--config", type=Path, required=True,
                   help="service.toml from `timeout-hub org-broker-config`")
    p.add_argument("--key", type=Path, required=True, help="the organisation's age key file (0600)")
    p.add_argument("--db", type=db_location, required=True,
                   help="the store: a SQLite file, or a postgresql:// URL without a password "
                        "(passfile= or PGPASSFILE holds it; docs/care.md)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from core.sdnotify import run_until_stopped, stop_on_signals
    stop_on_signals()   # a SIGTERM while it starts is a clean stop
    try:
        link, key = load_link(args.config), load_key(args.key)
        store = OrgStore.open(args.db)
    except (ServiceConfigError, KeyFileError, sqlite3.Error, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    known = KnownHouseholds(link.households)
    service = OrgService(store, key, known=known.__contains__, prefix=link.prefix,
                         link=link, registry=known).start()
    run_until_stopped(service.alive, f"the organisation's service on {link.host}:{link.port} "
                                     f"({len(store.households())} households in the store)")
    service.stop()
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
