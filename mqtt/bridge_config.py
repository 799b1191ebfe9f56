"""`timeout-hub broker-config --bridge ORG.toml`: the household broker's bridge to its care
organisation's broker (docs/fleet.md).

What crosses is fixed here, not in the organisation's file:
- out: only the household's `share/` subtree (what the partners consented to share; today the
  equipment status of mqtt.share_status, which has no partner data);
- in: only what a partner's own wearable publishes under `partner/<p>/` (its apart verdict, its
  button and answers, its heartbeat), from that wearable's own prefix on the organisation's broker;
- in: `org/access`, what the organisation's service read of this household (R6), from the
  household's own prefix; it is published on the household's broker by the bridge itself;
- out to a wearable away from home: only the contract's `away` topics it reads (its own prompts,
  the hub's confirmations of its own inputs, whether the hub is online), under its own prefix.
State, events, sound, presence, doors, calls and the other partner's prompts never cross.
"""
from __future__ import annotations

import os
import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from mqtt import contract, schemas
from mqtt.errors import BrokerConfigError, ContractError

CONF_DIR = "conf.d"          # write_broker_config includes DIR/conf.d/*.conf
BRIDGE_FILE = "bridge.conf"
OUT_SUBTREE = "share/#"
IN_FROM_ORG = "org/access"   # the contract's `bridge`-published topic the organisation writes
LINK_TOPIC = "bridge/link"
# the organisation's age public key (R11), from org.toml's `age_recipient`, for the consent filter
AGE_FILE = "org-age.pub"


@dataclass(frozen=True)
class OrgLink:
    household: str
    host: str
    port: int
    prefix: str
    cafile: Path
    username: str
    password: str | None = field(default=None, repr=False)
    certfile: Path | None = None
    keyfile: Path | None = None
    age_recipient: str | None = None


def inbound_topics() -> list[tuple[str, str]]:
    """(relative topic, wearable role) for every topic a partner's wearable may publish under
    `partner/<p>/`, from the contract: a new wearable topic there crosses without a change here."""
    out = []
    for c in contract.CONCRETE.values():
        if c.partner and f"wearable-{c.partner}" in c.publishers:
            out.append((c.topic, f"wearable-{c.partner}"))
    return sorted(out)


def outbound_wearable_topics() -> list[tuple[str, str]]:
    """(relative topic, wearable role) for what a partner's wearable away from home needs from its
    hub: the contract's `away` topics that wearable reads (contract.away_topics)."""
    return sorted((t, f"wearable-{p}") for p in schemas.PARTNERS for t in contract.away_topics(p))


def load_org(path: Path) -> OrgLink:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise BrokerConfigError(f"organisation file {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise BrokerConfigError(f"organisation file {path} is not readable TOML: {e}") from None
    known = {"household", "host", "port", "prefix", "cafile", "username", "password",
             "certfile", "keyfile", "age_recipient"}
    extra = sorted(set(data) - known)
    if extra:
        raise BrokerConfigError(f"{path}: unknown key {extra[0]!r} (known: {', '.join(sorted(known))})")

    def text(key: str, required: bool = True) -> str | None:
        v = data.get(key)
        if v is None and not required:
            return None
        if not isinstance(v, str) or not v or any(ch in v for ch in "\n\r\0 "):
            raise BrokerConfigError(f"{path}: {key} must be a non-empty string without spaces")
        return v

    def file(key: str, required: bool = True) -> Path | None:
        v = text(key, required)
        if v is None:
            return None
        p = (path.parent / v).resolve()
        if not p.is_file():
            raise BrokerConfigError(f"{path}: {key} {p} does not exist")
        return p

    port = data.get("port")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise BrokerConfigError(f"{path}: port must be a TCP port (1-65535)")
    try:
        household = contract.check_household(text("household") or "")
    except ContractError as e:
        raise BrokerConfigError(f"{path}: {e}") from None
    prefix = text("prefix") or ""
    if any(ch in prefix for ch in "+#") or prefix.startswith("/") or prefix.endswith("/"):
        raise BrokerConfigError(f"{path}: prefix {prefix!r} must be a topic without wildcards or "
                                "leading/trailing '/'")
    link = OrgLink(household=household, host=text("host") or "", port=port, prefix=prefix,
                   cafile=file("cafile") or Path(), username=text("username") or "",
                   password=text("password", required=False), certfile=file("certfile", False),
                   keyfile=file("keyfile", False), age_recipient=text("age_recipient", False))
    if link.age_recipient:
        from mqtt.seal import SealError, recipient
        try:
            recipient(link.age_recipient)
        except SealError as e:
            raise BrokerConfigError(f"{path}: age_recipient: {e}") from None
    if link.username != household:
        raise BrokerConfigError(f"{path}: username {link.username!r} must be the household id "
                                f"{household!r} (the organisation's ACL is keyed on it)")
    if (link.certfile is None) != (link.keyfile is None):
        raise BrokerConfigError(f"{path}: certfile and keyfile go together")
    if link.password is None and link.certfile is None:
        raise BrokerConfigError(f"{path}: give a password or a client certificate (certfile, keyfile)")
    return link


def bridge_text(link: OrgLink, files: dict[str, Path]) -> str:
    h = link.household
    local = contract.prefix(h)
    lines = [
        f"# Bridge of household {h} to its care organisation; generated by",
        "# `timeout-hub broker-config --bridge`. What crosses: docs/fleet.md.",
        f"connection org-{h}",
        f"address {link.host}:{link.port}",
        f"remote_clientid {h}",
        f"remote_username {link.username}",
        *([f"remote_password {link.password}"] if link.password else []),
        f"bridge_cafile {files['cafile']}",
        *([f"bridge_certfile {files['certfile']}", f"bridge_keyfile {files['keyfile']}"]
          if "certfile" in files else []),
        "bridge_tls_version tlsv1.2",
        "bridge_insecure false",
        "bridge_protocol_version mqttv311",
        # Both brokers keep the bridge's session: what was queued while the uplink was down is
        # delivered after it, in order, and a QoS 1 message is resent until acknowledged.
        "cleansession false",
        "local_cleansession false",
        "start_type automatic",
        "restart_timeout 2 30",
        "keepalive_interval 30",
        # the broker tells its own clients whether the bridge is up (1) or down (0), retained,
        # on a topic the consent filter reads; never sent to the organisation (docs/care.md)
        "notifications true",
        "notifications_local_only true",
        f"notification_topic {local}{LINK_TOPIC}",
        "",
        "# out: only the household's share/ subtree",
        f"topic {OUT_SUBTREE} out 1 {local} {link.prefix}/{h}/",
        "# in: what the organisation read of this household (R6), from the household's own prefix",
        f"topic {IN_FROM_ORG} in 1 {local} {link.prefix}/{h}/",
        "# in: only what a partner's own wearable publishes, from that wearable's own prefix",
    ]
    for topic, role in inbound_topics():
        lines.append(f"topic {topic} in 1 {local} {link.prefix}/{h}.{role}/")
    lines.append("# out to a wearable away from home: its own prompts and confirmations, hub online")
    for topic, role in outbound_wearable_topics():
        lines.append(f"topic {topic} out 1 {local} {link.prefix}/{h}.{role}/")
    return "\n".join(lines) + "\n"


def write_bridge(out: Path, household: str, org_file: Path,
                 owner: tuple[int, int] | None = None) -> OrgLink:
    """Write DIR/conf.d/bridge.conf (0600: it holds the password) and copy the organisation's CA
    (and a client certificate) into DIR/bridge/, where the broker's user can read them."""
    link = load_org(org_file)
    if link.household != household:
        raise BrokerConfigError(f"{org_file} is for household {link.household!r}, not {household!r}")
    out = Path(out).resolve()
    bdir, cdir = out / "bridge", out / CONF_DIR
    for d in (bdir, cdir):
        d.mkdir(mode=0o700, exist_ok=True)
    files: dict[str, Path] = {}
    for key, src in (("cafile", link.cafile), ("certfile", link.certfile), ("keyfile", link.keyfile)):
        if src is not None:
            dst = bdir / {"cafile": "org-ca.crt", "certfile": "client.crt", "keyfile": "client.key"}[key]
            if src != dst:
                shutil.copyfile(src, dst)
            os.chmod(dst, 0o600)
            files[key] = dst
    if link.age_recipient:   # what the consent filter seals to; public, but only ours to change
        (bdir / AGE_FILE).write_text(link.age_recipient + "\n")
        files["age"] = bdir / AGE_FILE
    path = cdir / BRIDGE_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(bridge_text(link, files))
    os.replace(tmp, path)
    if owner:
        for p in (bdir, cdir, path, *files.values()):
            os.chown(p, *owner)
    return link


def remove_bridge(out: Path) -> bool:
    """`broker-config` without --bridge leaves an existing bridge alone; this removes it."""
    path = Path(out).resolve() / CONF_DIR / BRIDGE_FILE
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed

