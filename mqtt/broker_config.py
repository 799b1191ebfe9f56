"""`timeout-hub broker-config`: a Mosquitto configuration with a password per service, the ACL of
the contract, no anonymous access, persistence on, and optionally a TLS listener for a panel on
another device.

Passwords are hashed here the way `mosquitto_passwd` does in Mosquitto 2 (PBKDF2-SHA512, `$7$`),
so provisioning needs no broker tools and a test can check the broker accepts them.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import os
import pwd
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path

from core.durable import write_atomic
from mqtt import contract
from mqtt.errors import BrokerConfigError, ContractError

# Per listener: before the first `listener` line, Mosquitto 2.0 would open a default listener
# on 0.0.0.0:1883 to hold it. The client id is the username, so one service cannot take over
# another's session (and its queued messages) by claiming that service's client id.
LISTENER_OPTIONS = ("use_username_as_clientid true",)

PBKDF2_ITERATIONS = 101  # mosquitto_passwd's default; passwords are 192-bit random anyway

# The system user each local service runs as (systemd/*.service, created by `make install`). Run as
# root, broker-config gives each of them its own credentials file and nobody else's; the `bridge`
# role is the share service's (timeout-hub-share.service); services without a local user
# (wearables) keep root-only files.
SERVICE_USERS: dict[str, str] = {"hub": "timeout-hub", "panel": "timeout-panel",
                                 "caller": "timeout-caller", "bridge": "timeout-share"}


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    @classmethod
    def load(cls, path: Path) -> Credentials:
        try:
            data = json.loads(Path(path).read_text())
            return cls(str(data["username"]), str(data["password"]))
        except FileNotFoundError:
            raise BrokerConfigError(f"credentials file {path} does not exist; run "
                                    "`timeout-hub broker-config` first") from None
        except (ValueError, KeyError, TypeError) as e:
            raise BrokerConfigError(f"credentials file {path} is not "
                                    '{"username": ..., "password": ...}: ' f"{e}") from None


def hash_password(password: str, salt: bytes | None = None,
                  iterations: int = PBKDF2_ITERATIONS) -> str:
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


@dataclass(frozen=True)
class TlsListener:
    port: int
    bind: str      # the hub's address in the home: no default, so it never opens on every network
    certfile: Path | None = None  # None: a household CA and server certificate are generated
    keyfile: Path | None = None
    names: tuple[str, ...] = ()   # extra DNS names / IPs for a generated certificate




def _broker_uid_gid(broker_user: str) -> tuple[int, int] | None:
    """Mosquitto started as root drops to `user`; it must own what it reads and writes."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(broker_user)
    except KeyError:
        raise BrokerConfigError(f"broker user {broker_user!r} does not exist on this machine "
                                "(install the mosquitto package, or pass --broker-user)") from None
    return entry.pw_uid, entry.pw_gid


def _service_owners(service_users: dict[str, str]) -> dict[str, tuple[int, int]]:
    """uid/gid per service whose user exists; as non-root nothing can be given away."""
    if os.geteuid() != 0:
        return {}
    owners = {}
    for service, user in service_users.items():
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            continue   # not installed here (a test machine, a panel-only Pi): stays root's
        owners[service] = (entry.pw_uid, entry.pw_gid)
    return owners


def _load_or_make_credentials(cred_dir: Path, rotate: bool) -> dict[str, Credentials]:
    creds: dict[str, Credentials] = {}
    for service in contract.ROLES:   # the services and the installer's tools
        path = cred_dir / f"{service}.json"
        if path.exists() and not rotate:
            existing = Credentials.load(path)
            if existing.username != service:
                raise BrokerConfigError(f"{path} names user {existing.username!r}, expected {service!r}")
            creds[service] = existing
        else:
            creds[service] = Credentials(service, secrets.token_urlsafe(24))
    return creds


def _generate_tls(tls_dir: Path, household: str, names: tuple[str, ...]) -> tuple[Path, Path]:
    """A household CA (its certificate goes to the remote panel) and a server certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_crt, srv_crt, srv_key = tls_dir / "ca.crt", tls_dir / "server.crt", tls_dir / "server.key"
    if ca_crt.exists() and srv_crt.exists() and srv_key.exists():
        return srv_crt, srv_key
    now = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"timeout-hub {household} CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for n in ("localhost", socket.gethostname(), *names):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            alt.append(x509.DNSName(n))
    alt.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"timeout-hub {household}")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName(list(dict.fromkeys(alt))), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    write_atomic(ca_crt, ca.public_bytes(pem), 0o644)
    write_atomic(srv_crt, cert.public_bytes(pem), 0o644)
    write_atomic(srv_key, key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()), 0o600)
    # The CA key is not kept: a new panel certificate means re-running with --rotate-tls.
    return srv_crt, srv_key


def write_broker_config(out: Path, household: str, *, port: int = 1883, rotate: bool = False,
                        tls: TlsListener | None = None, broker_user: str | None = None,
                        rotate_tls: bool = False,
                        service_users: dict[str, str] | None = None) -> dict[str, Credentials]:
    """Write DIR/mosquitto.conf, DIR/passwd, DIR/acl, DIR/credentials/<service>.json (and DIR/tls/).

    Run as root, credentials/<service>.json belongs to that service's system user (SERVICE_USERS)
    with mode 0600, and credentials/ is 0711: a service opens its own file by name, cannot list
    the folder, and cannot read another service's password."""
    try:
        contract.check_household(household)
    except ContractError as e:
        raise BrokerConfigError(str(e)) from None
    if not 0 < port < 65536:
        raise BrokerConfigError(f"port {port} is not a TCP port (1-65535)")
    out = Path(out).resolve()
    if broker_user is None:
        broker_user = "mosquitto" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    owner = _broker_uid_gid(broker_user)
    service_owner = _service_owners(SERVICE_USERS if service_users is None else service_users)
    try:
        out.mkdir(parents=True, exist_ok=True)
        cred_dir = out / "credentials"
        cred_dir.mkdir(mode=0o700, exist_ok=True)
        data_dir = out / "data"
        data_dir.mkdir(mode=0o700, exist_ok=True)
        # an existing folder too: before this, root wrote it 0700 and the services could not enter
        os.chmod(out, 0o755)
        os.chmod(cred_dir, 0o711 if service_owner else 0o700)
        (out / "conf.d").mkdir(mode=0o700, exist_ok=True)  # the fleet bridge (mqtt/bridge_config.py)
    except OSError as e:
        raise BrokerConfigError(f"cannot create {out}: {e.strerror}") from None

    creds = _load_or_make_credentials(cred_dir, rotate)
    for service, c in creds.items():
        path = cred_dir / f"{service}.json"
        write_atomic(path, json.dumps({"username": c.username, "password": c.password}, indent=2) + "\n",
               0o600)
        if service in service_owner:
            os.chown(path, *service_owner[service])
    write_atomic(out / "passwd", "".join(f"{c.username}:{hash_password(c.password)}\n"
                                   for c in creds.values()), 0o600)
    write_atomic(out / "acl", contract.acl_text(household), 0o600)

    conf = [
        f"# timeout-hub broker for household {household}; generated by `timeout-hub broker-config`.",
        "# Re-run it instead of editing: passwords are kept unless --rotate.",
        "per_listener_settings false",
        "allow_anonymous false",
        # Refuse oversized packets at the broker, before any service reads them into memory.
        "max_packet_size 32768",
        # Without it, a PUBACK followed by a PUBLISH to one client waits for a delayed ACK
        # (Nagle): ~40 ms added to every input -> state round trip.
        "set_tcp_nodelay true",
        f"password_file {out / 'passwd'}",
        f"acl_file {out / 'acl'}",
        "persistence true",
        f"persistence_location {data_dir}/",
        # Queued QoS 1 messages for a service that is down are written at least this often.
        "autosave_interval 10",
        # A service may be down for a while; 1,000 (the default) could drop its queued events.
        "max_queued_messages 20000",
        "persistent_client_expiration 14d",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "connection_messages true",
        f"user {broker_user}",
        "",
        "# Local services on the hub Pi",
        f"listener {port} 127.0.0.1",
        *LISTENER_OPTIONS,
    ]
    if tls is not None:
        if rotate_tls:
            for name in ("ca.crt", "server.crt", "server.key"):
                (out / "tls" / name).unlink(missing_ok=True)
        if (tls.certfile is None) != (tls.keyfile is None):
            raise BrokerConfigError("--tls-cert and --tls-key go together (or give neither to generate them)")
        if tls.certfile is None:
            (out / "tls").mkdir(mode=0o755, exist_ok=True)
            certfile, keyfile = _generate_tls(out / "tls", household, tls.names)
        else:
            certfile, keyfile = Path(tls.certfile).resolve(), Path(tls.keyfile).resolve()
            for f in (certfile, keyfile):
                if not f.is_file():
                    raise BrokerConfigError(f"TLS file {f} does not exist")
        conf += ["", "# A panel on another device in the home (TLS, same passwords and ACL)",
                 f"listener {tls.port} {tls.bind}", *LISTENER_OPTIONS, f"certfile {certfile}",
                 f"keyfile {keyfile}", "tls_version tlsv1.2"]
        if owner and tls.certfile is None:
            os.chown(keyfile, *owner)
    # Last: a bridge to the care organisation (docs/fleet.md), when `--bridge` wrote one.
    conf += ["", f"include_dir {out / 'conf.d'}"]
    write_atomic(out / "mosquitto.conf", "\n".join(conf) + "\n", 0o644)
    if owner:
        for p in (out / "passwd", out / "acl", data_dir, out / "conf.d"):
            os.chown(p, *owner)
    return creds
