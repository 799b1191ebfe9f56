"""A private PostgreSQL server for tests (Debian's postgresql: initdb, pg_ctl). One per test
module, since initdb takes a few seconds; each test takes a fresh database from it:

    @pytest.fixture(scope="module")
    def pg() -> Iterator[PgServer]:
        yield from postgres.running_server()

    def test_x(pg):
        store = OrgStore.open(pg.database())      # postgresql://care@127.0.0.1:PORT/org_N?passfile=...

PostgreSQL refuses to run as root: as root the server runs as the `postgres` system user, in a
temp dir that user owns. Over TCP the organisation's account `care` signs in with a password
(scram-sha-256) that libpq reads from a password file, as docs/care.md says to; the admin
connection (creating databases, cutting connections) uses the local socket.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

CARE_PASSWORD = "care-test-password"


def _bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    def __init__(self, bin_dir: Path, root: Path, passfile_dir: Path):
        self.bin, self.root, self.port = bin_dir, root, _free_port()
        self.data, self.log = root / "data", root / "server.log"
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(root, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self.passfile = passfile_dir / "pgpass"
        self.passfile.write_text(f"127.0.0.1:{self.port}:*:care:{CARE_PASSWORD}\n")
        self.passfile.chmod(0o600)
        self._n = 0

    def _run(self, *cmd: str) -> None:
        done = subprocess.run([*self._as, *cmd], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{cmd[0]}: {done.stdout}{done.stderr}{self.log_tail()}"

    def start(self) -> PgServer:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8",
                  "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync",
                  "--no-instructions")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                  "-t", "60", "-o", f"-k {self.root} -p {self.port} -h 127.0.0.1 -c fsync=off "
                  "-c full_page_writes=off", "start")
        with self.admin() as c:
            c.execute(f"CREATE ROLE care LOGIN PASSWORD '{CARE_PASSWORD}'")
        return self

    def stop(self) -> None:
        subprocess.run([*self._as, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m",
                        "immediate", "-w", "stop"], capture_output=True, timeout=60)

    def admin(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(host=str(self.root), port=self.port, user="postgres",
                               dbname=dbname, autocommit=True)

    def database(self) -> str:
        """A fresh, empty database owned by `care`; its URL (no password: the password file)."""
        self._n += 1
        name = f"org_{self._n}"
        with self.admin() as c:
            c.execute(f"CREATE DATABASE {name} OWNER care")
        return f"postgresql://care@127.0.0.1:{self.port}/{name}?passfile={self.passfile}"

    def cut_connections(self, url: str) -> int:
        """Drop every connection to that database, as a server restart or a network cut does."""
        name = conninfo_to_dict(url)["dbname"]
        with self.admin() as c:
            rows = c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchall()
        return len(rows)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""


def running_server() -> Iterator[PgServer]:
    """For a module-scoped fixture: a started server, stopped and removed afterwards."""
    bin_dir = _bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; "
                    "bootstrap installs Debian's postgresql).")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("PostgreSQL refuses to run as root and there is no `postgres` user "
                        "to run it as (Debian's postgresql package creates it).")
    root = Path(tempfile.mkdtemp(prefix="org-pg-"))
    passfile_dir = Path(tempfile.mkdtemp(prefix="org-pgpass-"))
    server = PgServer(bin_dir, root, passfile_dir)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(passfile_dir, ignore_errors=True)
