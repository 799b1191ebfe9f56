"""Client certificates for the organisation's broker (`org-broker-config --client-certificates`):
the organisation's CA signs one certificate per household bridge, per wearable and for the care
reader, with the username as its common name (Mosquitto's `use_identity_as_username`). A removed
or rotated household's certificates are revoked in the CRL the broker checks.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from core.durable import write_atomic
from mqtt.errors import BrokerConfigError

CLIENT_DAYS = 825




class ClientCA:
    """The organisation CA's key, kept in DIR/tls/ca.key (0600) because it signs client
    certificates; issued certificates in DIR/clients/, revoked serials in DIR/revoked.json."""

    def __init__(self, out: Path):
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        self.out = out
        key_path = out / "tls" / "ca.key"
        if not key_path.exists():
            raise BrokerConfigError(
                f"{key_path} does not exist: client certificates need the organisation CA's key, "
                "which only a CA generated with --client-certificates keeps (start in a new --out)")
        self.key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        self.cert = x509.load_pem_x509_certificate((out / "tls" / "ca.crt").read_bytes())
        (out / "clients").mkdir(mode=0o700, exist_ok=True)
        self.revoked_path = out / "revoked.json"
        self.revoked: list[int] = (json.loads(self.revoked_path.read_text())["serials"]
                                   if self.revoked_path.exists() else [])

    def paths(self, user: str) -> tuple[Path, Path]:
        return self.out / "clients" / f"{user}.crt", self.out / "clients" / f"{user}.key"

    def issue(self, user: str, renew: bool = False) -> tuple[Path, Path]:
        """The user's certificate (CN = username); a renewal revokes the one before."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
        crt, key_path = self.paths(user)
        if crt.exists() and key_path.exists() and not renew:
            return crt, key_path
        self.revoke(user)
        now = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now).not_valid_after(now + dt.timedelta(days=CLIENT_DAYS))
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .sign(self.key, hashes.SHA256()))  # type: ignore[arg-type]
        pem = serialization.Encoding.PEM
        write_atomic(key_path, key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()), 0o600)
        write_atomic(crt, cert.public_bytes(pem), 0o600)
        return crt, key_path

    def revoke(self, user: str) -> None:
        from cryptography import x509
        crt, key_path = self.paths(user)
        if crt.exists():
            self.revoked.append(x509.load_pem_x509_certificate(crt.read_bytes()).serial_number)
            crt.unlink()
        key_path.unlink(missing_ok=True)

    def write_crl(self) -> Path:
        """DIR/tls/crl.pem with every revoked serial (valid for a year; re-run to renew)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
                   .last_update(now).next_update(now + dt.timedelta(days=365)))
        for serial in sorted(set(self.revoked)):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build())
        crl = builder.sign(self.key, hashes.SHA256())  # type: ignore[arg-type]
        path = self.out / "tls" / "crl.pem"
        write_atomic(path, crl.public_bytes(serialization.Encoding.PEM), 0o644)
        write_atomic(self.revoked_path, json.dumps({"serials": sorted(set(self.revoked))}).encode(), 0o600)
        return path
