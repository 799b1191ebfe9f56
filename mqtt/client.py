"""The client every service uses to talk to the hub's broker.

- MQTT 5 over paho-mqtt 2.x (callback API v2): the broker answers a refused publish or
  subscription with a reason code instead of dropping it silently.
- The service name as client id (the broker enforces it) and a persistent session
  (`clean_start=False`, 14-day expiry): QoS 1 messages sent while this service was down are kept for it by the broker.
- Subscriptions are (re)made in on_connect; reconnects back off from 0.5 s to 30 s.
- Last will `offline` on `<service>/available`, `online` on connect, `stopped` on a clean exit.
- Every retained value this service published (the hub's `state`, a `health`) is published again
  on every (re)connect: a broker killed -9 restores the value of its last autosave, not the newest.
- Receive: size, JSON, version and strict schema checks (no coercion: `"0.2"` is not a number,
  `true` is not 1; an `id` is required); a malformed or unknown payload is logged with
  its reason (never its content) and dropped; a handler's exception is logged; the network thread
  never dies. Repeated ids are dropped before the handler (persistently for QoS 1 events).
- Publish: QoS 1 messages are written to the SQLite outbox before they are sent and removed on
  PUBACK, so a broker restart or a service crash loses nothing. When the outbox cannot be written
  (a full or read-only SD card) the message is still sent, from memory: a call that is due must go
  out; `storage_problem` says why until a write succeeds again.
- Acknowledge: a QoS 1 message is acknowledged (PUBACK) only after its handlers returned. A
  handler that raises StorageError has applied the message but could not save it: the message is
  held unacknowledged (the broker keeps it and sends it again after a restart) until the
  application calls `acknowledge_held()` after a save that went through.
- Acknowledgement end to end (docs/reliability.md): an input to the hub (a `confirmed` topic) is
  done when the hub has applied and saved it, not when the broker has it. The sender keeps it
  after the PUBACK until the hub names its id on `applied/<sender>`, and sends what is still
  unconfirmed again whenever the hub comes online (a broker killed before its autosave forgets
  what it acknowledged). The hub confirms after its handler returned, and confirms a repeat
  again; a handler that failed confirms nothing, so the input comes again; one whose save failed
  (StorageError) is confirmed with its PUBACK, once `acknowledge_held()` runs.
"""
from __future__ import annotations

import json
import logging
import socket
import sqlite3
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BaseModel, ValidationError

from core.errors import StorageError
from mqtt import contract, schemas
from mqtt.broker_config import Credentials
from mqtt.errors import ContractError, NotPermitted, PayloadRejected
from mqtt.store import OutboxRow, Store

log = logging.getLogger(__name__)

MAX_PAYLOAD = 16 * 1024
# PUBACK reasons that will not change by sending again: not authorized, bad topic, bad payload
PERMANENT_REFUSALS = frozenset({0x87, 0x90, 0x99})
SESSION_EXPIRY_S = 14 * 24 * 3600

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Message:
    topic: str                       # relative to timeout/<household>/
    payload: BaseModel | str         # a schema model, or the availability word
    partner: str | None              # from the topic, the only source of a partner's identity
    retained: bool


Handler = Callable[[Message], None]


_FIELD_NAMES = frozenset(name for m in (*(s.schema for s in contract.TOPICS if s.schema),
                                         schemas.Fault, schemas.OpenQuestion)
                         for name in m.model_fields)


def _first_error(e: ValidationError) -> str:
    """The first problem, naming only our own field names: a sender chooses unknown keys and
    values, and they must not reach the log."""
    err = e.errors()[0]
    if err["type"] == "extra_forbidden":
        return "a field that is not in the contract" + (
            f" (and {e.error_count() - 1} more problem(s))" if e.error_count() > 1 else "")
    where = ".".join(str(p) if (isinstance(p, int) or p in _FIELD_NAMES) else "?"
                     for p in err["loc"]) or "payload"
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"{where}: {err['type']}{more}"


def parse_payload(concrete: contract.Concrete, raw: bytes) -> BaseModel | str:
    """Validate one received payload against the contract; raise PayloadRejected with the reason."""
    if len(raw) > MAX_PAYLOAD:
        raise PayloadRejected(f"too large: {len(raw)} bytes, over the {MAX_PAYLOAD}-byte limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadRejected("not UTF-8: payload is not UTF-8 text") from None
    schema = concrete.spec.schema
    if schema is None:
        words = concrete.spec.words or schemas.AVAILABILITY
        if text not in words:
            raise PayloadRejected(f"bad word: must be one of {', '.join(words)}")
        return text
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise PayloadRejected(f"not JSON: payload is not JSON ({type(e).__name__})") from None
    if not isinstance(obj, dict):
        raise PayloadRejected("not an object: payload is not a JSON object")
    v = obj.get("v")
    # `type(v) is int`: JSON true equals 1 in Python, and a version is never a flag
    if type(v) is not int or v != schemas.SCHEMA_VERSION:
        shown = repr(v) if isinstance(v, int) and not isinstance(v, bool) and abs(v) < 1000 \
            else f"of type {type(v).__name__}"
        raise PayloadRejected(f"version: unsupported schema version {shown} "
                              f"(this service speaks v{schemas.SCHEMA_VERSION})")
    if "id" not in obj:
        # without an id a resent message cannot be told from a new one (a press applied twice)
        raise PayloadRejected("no id: every message carries its own id (docs/mqtt.md)")
    try:
        # strict: "0.2" is not a number and true is not 1; no value is coerced into another type
        return schema.model_validate_json(text, strict=True)
    except ValidationError as e:
        raise PayloadRejected(f"invalid {schema.__name__}: {_first_error(e)}") from None
    except (RecursionError, ValueError, TypeError) as e:
        raise PayloadRejected(f"invalid {schema.__name__}: {type(e).__name__}") from None


def _no_delay(client, userdata, sock) -> None:
    """A service sends several small packets per step (PUBACK, events, state); with Nagle on,
    each waits for the broker's delayed ACK (~40 ms)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass


class BusClient:
    def __init__(self, service: str, household: str, credentials: Credentials, *,
                 state_dir: Path, host: str = "127.0.0.1", port: int = 1883,
                 tls_ca: Path | None = None, tls_cert: tuple[Path, Path] | None = None,
                 topic_prefix: str | None = None,
                 reconnect_min: float = 0.5, reconnect_max: float = 30.0, keepalive: int = 30,
                 clock: Callable[[], datetime] = schemas.now_utc,
                 on_connection: Callable[[bool], None] | None = None):
        if service not in schemas.SERVICES:
            raise ContractError(f"unknown service {service!r}; one of {', '.join(schemas.SERVICES)}")
        self.service = service
        self.household = contract.check_household(household)
        # The outbox keeps topics under the household's own prefix; `topic_prefix` is where this
        # connection puts them on the wire (a wearable away from home: its prefix on the
        # organisation's broker), so one outbox serves either link (firmware/wearable/link.py).
        self.home_prefix = contract.prefix(household)
        self.prefix = topic_prefix or self.home_prefix
        self.clock = clock
        self.on_connection = on_connection   # told True/False as the broker link comes and goes
        self.host, self.port, self.keepalive = host, port, keepalive
        self.stats: Counter[str] = Counter()
        self.rejections: Counter[str] = Counter()
        self.connected = threading.Event()
        self._handlers: dict[str, list[Handler]] = {}
        # Never held while calling into paho: paho calls on_publish holding its own mutex.
        self._lock = threading.Lock()
        self._inflight: dict[int, str] = {}          # mid -> outbox id, until PUBACK
        # PUBACKs that beat the recording of their mid; only fresh ones count (mids wrap at 65535)
        self._early: OrderedDict[int, tuple[object, float]] = OrderedDict()
        self._sub_pending: set[int] = set()
        self._sub_early: set[int] = set()
        self._sub_done = threading.Condition(self._lock)
        self._last_retained: dict[str, str] = {}
        # the newest value of each retained topic this service published: restated on every
        # (re)connect, because a broker killed before its autosave restores an older one
        self._retained_out: dict[str, tuple[bytes, int]] = {}
        self._restate_lock = threading.Lock()
        self._started = False
        # applied but not saved: (mid, qos) still to acknowledge, and the ids to mark seen then
        self._held: list[tuple[int, int]] = []
        self._held_ids: dict[str, bool] = {}     # id -> persist as seen (QoS 1 events)
        self._held_confirm: dict[str, contract.Concrete] = {}   # held inputs to confirm when saved
        self.storage_problem: str | None = None  # the last outbox write that failed, until one works
        self.store = Store(Path(state_dir) / f"{service}-bus.sqlite3")
        # outbox ids the broker acknowledged and the hub has not confirmed yet
        self._unconfirmed: set[str] = set()
        self._confirmed_topics = frozenset(
            self.home_prefix + c.topic for c in contract.CONCRETE.values()
            if c.spec.confirmed and service in c.publishers)

        # The broker uses the username as client id (use_username_as_clientid); this matches it.
        # manual_ack: a PUBACK only once the message is applied and saved (see _on_message)
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=service,
                        protocol=paho.MQTTv5, manual_ack=True)
        c.username_pw_set(credentials.username, credentials.password)
        c.will_set(self._abs(f"{service}/available"), "offline", qos=1, retain=True)
        c.reconnect_delay_set(min_delay=reconnect_min, max_delay=reconnect_max)
        c.max_inflight_messages_set(100)
        if tls_ca is not None:
            c.tls_set(ca_certs=str(tls_ca), certfile=str(tls_cert[0]) if tls_cert else None,
                      keyfile=str(tls_cert[1]) if tls_cert else None)
        c.on_socket_open = _no_delay
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        c.on_subscribe = self._on_subscribe
        c.suppress_exceptions = True
        self._client = c

    # -- public API ---------------------------------------------------------------------------
    def make(self, schema: type[M], **fields: object) -> M:
        """A payload stamped by this service's (injectable) clock."""
        fields.setdefault("ts", self.clock())
        return schema(**fields)

    def on(self, pattern: str, handler: Handler) -> None:
        """Call `handler` for every valid message on the topic(s); `{partner}` means both."""
        topics = contract.expand_pattern(pattern)
        for t in topics:
            if self.service not in contract.lookup(t).subscribers:
                raise NotPermitted(f"{self.service} may not subscribe to {t} (docs/mqtt.md)")
        with self._lock:
            for t in topics:
                self._handlers.setdefault(t, []).append(handler)
        # Always: if this races with a (re)connect, subscribing twice is harmless, missing is not.
        self._subscribe(topics)

    def wait_subscribed(self, timeout: float = 10.0) -> bool:
        """Connected, and the broker has confirmed every subscription made so far."""
        deadline = time.monotonic() + timeout
        if not self.connected.wait(timeout):
            return False
        with self._sub_done:
            while self._sub_pending:
                left = deadline - time.monotonic()
                if left <= 0 or not self._sub_done.wait(left):
                    return not self._sub_pending
        return True

    def publish(self, topic: str, payload: BaseModel) -> uuid.UUID:
        """Publish per the contract's QoS and retain; QoS 1 goes through the persistent outbox.
        Returns the message id (receivers use it to drop repeats)."""
        concrete = contract.lookup(topic)
        if self.service not in concrete.publishers:
            raise NotPermitted(f"{self.service} may not publish on {topic} (docs/mqtt.md)")
        schema = concrete.spec.schema
        if schema is None or not isinstance(payload, schema):
            raise ContractError(f"{topic} takes a {schema.__name__ if schema else 'availability word'}, "
                                f"not {type(payload).__name__}")
        data = payload.model_dump_json().encode()
        spec = concrete.spec
        # a retained value is remembered and sent under one lock, so a restatement on reconnect
        # can never overtake a newer value
        with self._restate_lock if spec.retain else nullcontext():
            if spec.retain:
                self._retained_out[self._abs(topic)] = (data, spec.qos)
            if spec.durable:
                try:
                    row = self.store.add(str(payload.id), self.home_prefix + topic, data, spec.qos,
                                         spec.retain)
                    self.storage_problem = None
                except (sqlite3.Error, OSError) as err:
                    # What is due must still leave (a call, a prompt): sent from memory, not kept
                    # across a crash; after one the sender re-derives it with the same id.
                    if self.storage_problem is None:
                        log.error("%s: cannot write the outbox (%s); sending from memory",
                                  self.service, err)
                    self.storage_problem = f"the outbox cannot be written: {err}"
                    self.stats["sent_unsaved"] += 1
                    self._client.publish(self._abs(topic), data, qos=spec.qos, retain=spec.retain)
                    row = None
                if row is not None:
                    self._send(row)
            else:
                self._client.publish(self._abs(topic), data, qos=spec.qos, retain=spec.retain)
        self.stats["published"] += 1
        return payload.id

    def start(self) -> BusClient:
        if self._started:
            return self
        self._started = True
        if self._confirmed_topics and self.service != "hub":
            self.on(f"applied/{self.service}", self._applied)
            self.on("hub/available", self._hub_available)
        pending = self.store.pending()
        for row in pending:      # from before a restart: queued in order, sent on connect
            self._send(row)
        if pending:
            log.info("%s: %d unsent message(s) from before the restart queued", self.service, len(pending))
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self._client.connect_async(self.host, self.port, self.keepalive, clean_start=False,
                                   properties=props)
        self._client.loop_start()
        return self

    def wait_connected(self, timeout: float = 10.0) -> bool:
        return self.connected.wait(timeout)

    def alive(self) -> bool:
        """The network thread runs (it reconnects by itself; a dead one never would)."""
        thread = getattr(self._client, "_thread", None)   # paho's loop_start() thread
        return self._started and thread is not None and thread.is_alive()

    def acknowledge_held(self) -> int:
        """The application saved what it applied: acknowledge the messages held since a handler
        raised StorageError (and remember their ids as seen). Returns how many are still held
        (the bus's own store failing keeps them)."""
        with self._lock:
            held, ids = list(self._held), dict(self._held_ids)
        try:
            for msg_id, persist in ids.items():
                self.store.mark_seen(msg_id, persist=persist)
        except (sqlite3.Error, OSError) as e:
            log.warning("%s: cannot record received ids yet (%s); still unacknowledged", self.service, e)
            return len(held)
        with self._lock:
            for mid, qos in held:
                self._held.remove((mid, qos))
            for msg_id in ids:
                self._held_ids.pop(msg_id, None)
            confirm = [(i, self._held_confirm.pop(i)) for i in ids if i in self._held_confirm]
            left = len(self._held)
        for mid, qos in held:
            self._client.ack(mid, qos)
        for msg_id, concrete in confirm:
            self._confirm(concrete, msg_id)
        if held:
            log.info("%s: %d message(s) saved and acknowledged", self.service, len(held))
        return left

    def held(self) -> int:
        """Messages applied but not yet acknowledged (their save failed)."""
        with self._lock:
            return len(self._held_ids)

    def outbox_size(self) -> int:
        return self.store.outbox_size()

    def stop(self, timeout: float = 5.0) -> None:
        """Clean exit: `stopped` on availability (no last will), then disconnect."""
        if not self._started:
            self.store.close()
            return
        if self.connected.is_set():
            info = self._client.publish(self._abs(f"{self.service}/available"), "stopped",
                                        qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass
        self._started = False
        self._client.disconnect()
        self._client.loop_stop()
        self.connected.clear()
        self.store.close()

    def kill(self) -> None:
        """Drop the connection without a clean exit (the broker sends the last will); tests use it."""
        self._client.loop_stop()
        try:
            self._client.socket().close()  # type: ignore[union-attr]
        except (AttributeError, OSError):
            pass
        self._started = False
        self.connected.clear()
        self.store.close()

    # -- internals ----------------------------------------------------------------------------
    def _abs(self, relative: str) -> str:
        return self.prefix + relative

    def _subscribe(self, topics: list[str]) -> None:
        if not topics:
            return
        rc, mid = self._client.subscribe([(self._abs(t), contract.lookup(t).spec.qos) for t in topics])
        if rc == paho.MQTT_ERR_SUCCESS:
            with self._lock:
                if mid in self._sub_early:     # the SUBACK beat us here
                    self._sub_early.discard(mid)
                else:
                    self._sub_pending.add(mid)

    def _wire(self, stored: str) -> str:
        if stored.startswith(self.home_prefix):
            return self.prefix + stored[len(self.home_prefix):]
        return stored

    def _send(self, row: OutboxRow) -> None:
        info = self._client.publish(self._wire(row.topic), row.payload, qos=row.qos, retain=row.retain)
        if info.rc == paho.MQTT_ERR_QUEUE_SIZE:
            # paho's queue is full (a very long outage): the row stays and goes at the next start.
            log.error("%s: send queue full; message %s stays in the outbox", self.service, row.id)
            return
        with self._lock:
            early = self._early.pop(info.mid, None)
            if early is not None and time.monotonic() - early[1] > 5.0:
                early = None    # a stale ack of an earlier message with the same mid
            if early is None:
                self._inflight[info.mid] = row.id
        if early is not None:   # the PUBACK arrived before publish() returned
            self._settle(row.id, early[0])

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        try:
            self._connected(client, flags, reason_code)
        except Exception:
            log.exception("%s: error in on_connect", self.service)

    def _connected(self, client, flags, reason_code) -> None:
        if reason_code.is_failure:
            self.stats["connect_refused"] += 1
            log.error("%s: broker refused the connection: %s (check credentials/%s.json)",
                      self.service, reason_code, self.service)
            return
        self.stats["connects"] += 1
        client.publish(self._abs(f"{self.service}/available"), "online", qos=1, retain=True)
        with self._lock:
            topics = list(self._handlers)
            self._sub_pending.clear()   # SUBACKs of a dead connection never come
            # a held message's packet id belonged to the old connection: the broker sends the
            # message again (kept in _held_ids, so it is held again, not applied twice)
            self._held.clear()
        self._subscribe(topics)
        with self._restate_lock:
            for topic, (data, qos) in self._retained_out.items():
                client.publish(topic, data, qos=qos, retain=True)
            if self._retained_out:
                self.stats["restated"] += len(self._retained_out)
        self.connected.set()
        if self.on_connection:
            self.on_connection(True)
        log.info("%s: connected to %s:%s (session present: %s)", self.service, self.host,
                 self.port, flags.session_present)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        if self.on_connection:
            try:
                self.on_connection(False)
            except Exception:
                log.exception("%s: on_connection failed", self.service)
        if self._started:
            self.stats["disconnects"] += 1
            log.warning("%s: disconnected (%s); reconnecting with backoff", self.service, reason_code)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        with self._sub_done:
            if mid in self._sub_pending:
                self._sub_pending.discard(mid)
            elif len(self._sub_early) < 1024:
                self._sub_early.add(mid)
            self._sub_done.notify_all()
        for rc in reason_codes:
            if rc.is_failure:
                self.stats["subscribe_refused"] += 1
                log.error("%s: broker refused a subscription: %s", self.service, rc)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        try:
            with self._lock:
                msg_id = self._inflight.pop(mid, None)
                if msg_id is None:  # QoS 0 / availability, or an outbox send still recording its mid
                    self._early[mid] = (reason_code, time.monotonic())
                    while len(self._early) > 1024:
                        self._early.popitem(last=False)
                    return
            self._settle(msg_id, reason_code)
        except Exception:
            log.exception("%s: error while settling a PUBACK", self.service)

    def _settle(self, msg_id: str, reason_code) -> None:
        if reason_code.is_failure and reason_code.value not in PERMANENT_REFUSALS:
            # e.g. quota or server busy: keep the row; it is sent again at the next start
            self.stats["refused_transient"] += 1
            log.warning("%s: broker did not take message %s (%s); kept in the outbox",
                        self.service, msg_id, reason_code)
        elif reason_code.is_failure:
            # Retrying a refused message forever would block nothing but fill the log; keep it.
            self.store.dead_letter(msg_id, str(reason_code))
            self.stats["dead_letter"] += 1
            log.error("%s: broker refused message %s: %s (kept as dead letter)",
                      self.service, msg_id, reason_code)
        elif self._awaits_confirmation(msg_id):
            self.stats["acked"] += 1
        else:
            try:
                self.store.remove([msg_id])
            except (sqlite3.Error, OSError) as e:
                # the row is sent again at the next start; the receiver drops it by id
                log.warning("%s: cannot remove sent message from the outbox: %s", self.service, e)
            self.stats["acked"] += 1

    # -- acknowledgement end to end ---------------------------------------------------------
    def _awaits_confirmation(self, msg_id: str) -> bool:
        """After its PUBACK: an input to the hub stays in the outbox until the hub confirms it."""
        if not self._confirmed_topics or not self.store.has(msg_id, self._confirmed_topics):
            return False
        with self._lock:
            self._unconfirmed.add(msg_id)
        return True

    def unconfirmed(self) -> int:
        """Inputs the broker has and the hub has not yet confirmed applying."""
        with self._lock:
            return len(self._unconfirmed)

    def _applied(self, m: Message) -> None:
        if not isinstance(m.payload, schemas.Applied):
            return
        ids = [str(i) for i in m.payload.ids]
        self.store.remove(ids)
        with self._lock:
            self._unconfirmed.difference_update(ids)
        self.stats["confirmed"] += len(ids)

    def _hub_available(self, m: Message) -> None:
        """The hub came (back) online: what it has not confirmed may have been lost with the
        broker's memory; send it again (the hub drops a repeat by id and confirms it again)."""
        if m.payload != "online":
            return
        with self._lock:
            waiting = set(self._unconfirmed)
        rows = [r for r in self.store.pending() if r.id in waiting]
        for row in rows:
            self._send(row)
        if rows:
            self.stats["resent_unconfirmed"] += len(rows)
            log.info("%s: %d input(s) not yet confirmed by the hub sent again", self.service, len(rows))

    def _confirm(self, concrete: contract.Concrete, msg_id: str) -> None:
        """Hub side: tell the possible senders of this input that it is applied and saved."""
        for sender in sorted(concrete.publishers - {self.service}):
            self.publish(f"applied/{sender}", self.make(schemas.Applied, ids=[uuid.UUID(msg_id)]))

    def _reject(self, topic: str, reason: str) -> bool:
        self.stats["rejected"] += 1
        kind = reason.split(":")[0]    # a fixed phrase of ours, so the counter stays small
        self.rejections[kind] += 1
        n = self.rejections[kind]
        if n <= 10 or n % 1000 == 0:
            # Never the payload itself: it may hold what must not be logged.
            log.warning("%s: dropped message on %s: %s (%d of this kind)", self.service, topic, reason, n)
        return False    # dropped: acknowledged, so that the broker does not send it again

    def _on_message(self, client, userdata, msg: paho.MQTTMessage) -> None:
        hold = False
        try:
            hold = self._receive(msg)
        except Exception:  # the network thread must survive anything a peer sends
            self.stats["internal_errors"] += 1
            log.exception("%s: error while receiving on %s", self.service, msg.topic)
        if msg.qos and not hold:    # rejected, a duplicate, or applied and saved
            client.ack(msg.mid, msg.qos)

    def _hold(self, msg: paho.MQTTMessage, msg_id: str, persist: bool,
              concrete: contract.Concrete | None = None) -> bool:
        with self._lock:
            if msg.qos:
                self._held.append((msg.mid, msg.qos))
            self._held_ids[msg_id] = persist
            if concrete is not None and concrete.spec.confirmed:
                self._held_confirm[msg_id] = concrete   # its sender hears once it is saved
        self.stats["held"] += 1
        return True

    def _receive(self, msg: paho.MQTTMessage) -> bool:
        """Deliver one message; True when it must stay unacknowledged (applied, not saved)."""
        self.stats["received"] += 1
        if not msg.topic.startswith(self.prefix):
            return self._reject(msg.topic, "outside: topic outside this household")
        rel = msg.topic[len(self.prefix):]
        with self._lock:
            handlers = list(self._handlers.get(rel, ()))
        if not handlers:
            return self._reject(rel, "no handler: no handler for this topic")
        concrete = contract.lookup(rel)
        if msg.retain and not concrete.spec.retain:
            # A retained input would be replayed on every reconnect (a stale button press).
            return self._reject(rel, "retained: this topic does not take retained messages")
        try:
            payload = parse_payload(concrete, msg.payload)
        except PayloadRejected as e:
            return self._reject(rel, e.reason)

        msg_id = str(payload.id) if isinstance(payload, BaseModel) else None
        if msg_id is not None:
            if concrete.spec.retain:
                # A retained value comes again after every reconnect: that is not a duplicate
                # for a service that restarted, only for one that already holds it.
                if self._last_retained.get(rel) == msg_id:
                    self.stats["duplicates"] += 1
                    return
            elif self.store.seen(msg_id):
                self.stats["duplicates"] += 1
                with self._lock:
                    persist = self._held_ids.get(msg_id)
                if persist is not None:     # the first copy is applied but not saved yet
                    return self._hold(msg, msg_id, persist)
                if concrete.spec.confirmed:     # the first confirmation may have been lost
                    self._confirm(concrete, msg_id)
                return False
        message = Message(rel, payload, concrete.partner, bool(msg.retain))
        unsaved = failed = False
        for handler in handlers:
            try:
                handler(message)
            except StorageError as e:
                unsaved = True
                log.warning("%s: message on %s applied but not saved (%s); not acknowledged",
                            self.service, rel, e)
            except Exception:
                failed = True
                self.stats["handler_errors"] += 1
                log.exception("%s: handler for %s failed", self.service, rel)
        self.stats["delivered"] += 1
        if msg_id is None:
            return False
        if concrete.spec.retain:
            self._last_retained[rel] = msg_id
            return False
        if concrete.spec.confirmed and failed:
            return False     # not applied: neither seen nor confirmed, so its sender sends it again
        persist = concrete.spec.qos == 1
        if unsaved:
            self.store.mark_seen(msg_id, persist=False)   # in memory: a resend is not applied twice
            return self._hold(msg, msg_id, persist, concrete)
        try:
            self.store.mark_seen(msg_id, persist=persist)
        except (sqlite3.Error, OSError) as e:
            log.warning("%s: cannot record a received id (%s); not acknowledged", self.service, e)
            return self._hold(msg, msg_id, persist, concrete)
        if concrete.spec.confirmed:
            self._confirm(concrete, msg_id)
        return False
