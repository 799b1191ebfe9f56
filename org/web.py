"""The care worker's web page on the organisation's server (docs/care.md, "The care worker's
page"): a log-in per care worker (HTTP Basic over TLS), the households assigned to that worker,
and each household's evaluation report from the consented summaries in OrgStore.

Every list and report view is logged with OrgStore.log_access (who, when, allowed), also a
refused one; `on_access` is called with each entry so the organisation's service can mirror it
back to the household's access log (R6).

    python -m org.web add-worker NAME --accounts FILE      (password from the terminal or stdin)
    python -m org.web assign NAME HOUSEHOLD --db FILE
    python -m org.web serve --db FILE|URL --accounts FILE [--bind ADDR --port N --cert C --key K]
"""
from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import logging
import re
import ssl
import sys
import threading
from collections.abc import Callable
from html import escape
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from org.accounts import Accounts, AccountsError
from org.store import Access, OrgStore, db_location

log = logging.getLogger("org.web")

Lang = Literal["nl", "en"]
HOUSEHOLD_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,31}$")
REPORT_PATH = re.compile(r"^/household/([^/]+)/report$")
DEFAULT_DAYS = 30
REALM = "timeout-hub care"

PAGE: dict[str, dict[str, str]] = {
    "title": {"nl": "Mijn huishoudens", "en": "My households"},
    "signed_in": {"nl": "Ingelogd als {worker}.", "en": "Signed in as {worker}."},
    "none": {"nl": "Er zijn nog geen huishoudens aan u toegewezen.",
             "en": "No households are assigned to you yet."},
    "open": {"nl": "Rapport openen", "en": "Open the report"},
    "since": {"nl": "van", "en": "from"},
    "until": {"nl": "tot en met", "en": "to"},
    "logged": {"nl": "Elke keer dat u een rapport opent, wordt dat vastgelegd en kunnen beide "
                     "partners dat zien.",
               "en": "Every time you open a report it is logged, and both partners can see "
                     "that."},
    "back": {"nl": "Terug naar mijn huishoudens", "en": "Back to my households"},
    "forbidden": {"nl": "Dit huishouden is niet aan u toegewezen. Deze vraag is vastgelegd.",
                  "en": "This household is not assigned to you. This request has been logged."},
    "login": {"nl": "Log in met uw eigen account om deze pagina te zien.",
              "en": "Please sign in with your own account to see this page."},
    "not_found": {"nl": "Deze pagina bestaat niet.", "en": "This page does not exist."},
    "bad_date": {"nl": "{field} moet een datum zijn zoals 2026-11-01.",
                 "en": "{field} must be a date like 2026-11-01."},
    "bad_period": {"nl": "De einddatum ligt voor de begindatum.",
                   "en": "The end date is before the start date."},
}

_CSS = """body { font-family: "DejaVu Sans", Arial, sans-serif; color: #1f2d33; max-width: 46rem;
margin: 1.5rem auto; padding: 0 1rem; line-height: 1.45; }
li { margin: .6rem 0; } .meta { color: #4a5a61; } form { display: inline; margin-left: .6rem; }
input { font: inherit; }"""
_SECURITY_HEADERS = {
    # no script, no outside resource; the report's plots are inline SVG, its style inline
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def t(key: str, lang: Lang, **fields: str) -> str:
    return PAGE[key][lang].format(**fields)


def _page(title: str, body: str, lang: Lang) -> str:
    return (f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n"
            "</body></html>\n")


class CareWeb:
    """What the page does, apart from HTTP: who may see what, and the log of it."""

    def __init__(self, store: OrgStore, accounts: Accounts, *,
                 now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
                 on_access: Callable[[Access], None] | None = None,
                 tz: dt.tzinfo | None = None):
        self.store, self.accounts, self.now, self.tz = store, accounts, now, tz
        self.on_access = on_access

    def log(self, worker: str, household: str, action: str, allowed: bool) -> Access:
        entry = self.store.log_access(worker, household, action, allowed, self.now())
        if self.on_access is not None:
            try:
                self.on_access(entry)
            except Exception:   # the mirror's trouble is logged; the page is still served
                log.exception("the access hook failed for %s/%s", household, action)
        return entry

    def today(self) -> dt.date:
        now = self.now()
        return (now.astimezone(self.tz) if self.tz else now.astimezone()).date()


class _Handler(BaseHTTPRequestHandler):
    server_version = "timeout-hub-care"
    sys_version = ""
    timeout = 30          # a stalled connection lets go of its thread
    app: CareWeb

    # -- plumbing ---------------------------------------------------------------------------
    def log_message(self, format: str, *args: object) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def _send(self, status: HTTPStatus, html: str, extra: dict[str, str] | None = None) -> None:
        body = html.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in {**_SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _lang(self, query: dict[str, list[str]]) -> Lang:
        asked = (query.get("lang") or [""])[0]
        if asked in ("nl", "en"):
            return asked  # type: ignore[return-value]
        accept = self.headers.get("Accept-Language", "")
        return "en" if accept.lower().startswith("en") else "nl"

    def _worker(self) -> str | None:
        """The signed-in worker, or None (a wrong name and a wrong password look the same)."""
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            name, _, password = base64.b64decode(header[6:], validate=True).decode("utf-8") \
                .partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        try:
            return name if self.app.accounts.verify(name, password) else None
        except AccountsError as e:
            log.error("%s", e)
            return None

    # -- pages ------------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        lang = self._lang(query)
        worker = self._worker()
        if worker is None:
            self._send(HTTPStatus.UNAUTHORIZED, _page(t("login", lang), f"<p>{t('login', lang)}</p>",
                                                      lang),
                       {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})
            return
        if url.path == "/":
            self._list(worker, lang)
            return
        m = REPORT_PATH.fullmatch(url.path)
        if m and HOUSEHOLD_RE.fullmatch(m.group(1)):
            self._report(worker, m.group(1), query, lang)
            return
        self._send(HTTPStatus.NOT_FOUND, _page(t("not_found", lang),
                                               f"<p>{t('not_found', lang)}</p>", lang))

    def _list(self, worker: str, lang: Lang) -> None:
        app = self.app
        households = app.store.households_for(worker)
        until = app.today()
        since = until - dt.timedelta(days=DEFAULT_DAYS)
        items = []
        for hh in households:
            app.log(worker, hh, "list", True)
            items.append(
                f'<li><strong>{escape(hh)}</strong> <form method="get" '
                f'action="/household/{escape(hh)}/report">'
                f'<input type="hidden" name="lang" value="{lang}">'
                f'<label>{t("since", lang)} <input type="date" name="since" value="{since}"></label> '
                f'<label>{t("until", lang)} <input type="date" name="until" value="{until}"></label> '
                f'<button type="submit">{t("open", lang)}</button></form></li>')
        body = (f"<h1>{t('title', lang)}</h1>"
                f"<p class=\"meta\">{escape(t('signed_in', lang, worker=worker))}</p>"
                + (f"<ul>{''.join(items)}</ul>" if items else f"<p>{t('none', lang)}</p>")
                + f"<p class=\"meta\">{t('logged', lang)}</p>")
        self._send(HTTPStatus.OK, _page(t("title", lang), body, lang))

    def _report(self, worker: str, household: str, query: dict[str, list[str]],
                lang: Lang) -> None:
        app = self.app
        if not app.store.may_read(worker, household):
            app.log(worker, household, "report", False)
            self._send(HTTPStatus.FORBIDDEN, _page(
                t("forbidden", lang), f"<p>{t('forbidden', lang)}</p><p><a href=\"/?lang={lang}\">"
                f"{t('back', lang)}</a></p>", lang))
            return
        until = app.today()
        since = until - dt.timedelta(days=DEFAULT_DAYS)
        try:
            if query.get("since", [""])[0]:
                since = dt.date.fromisoformat(query["since"][0])
            if query.get("until", [""])[0]:
                until = dt.date.fromisoformat(query["until"][0])
        except ValueError:
            self._send(HTTPStatus.BAD_REQUEST, _page(t("title", lang), "<p>" + t(
                "bad_date", lang, field="since/until") + "</p>", lang))
            return
        if until < since:
            self._send(HTTPStatus.BAD_REQUEST, _page(t("title", lang),
                                                     f"<p>{t('bad_period', lang)}</p>", lang))
            return
        from report import render_html  # matplotlib: loaded on the first report only
        app.log(worker, household, f"report {since}..{until}", True)
        page = render_html(household, app.store.summaries(household), since, until, lang,
                           tz=app.tz)
        nav = f'<p class="nav"><a href="/?lang={lang}">{t("back", lang)}</a></p>'
        self._send(HTTPStatus.OK, page.replace("<body>\n", f"<body>\n{nav}\n", 1))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        """A broken connection (plain HTTP on the TLS port, a client gone) is one log line,
        not a traceback."""
        err = sys.exc_info()[1]
        log.warning("a connection from %s failed: %s", client_address[0], err)


def make_server(app: CareWeb, bind: str = "127.0.0.1", port: int = 8443, *,
                cert: Path | None = None, key: Path | None = None) -> _Server:
    """The page's server (not started). Without a certificate it serves only on the loopback
    address: Basic log-in over plain HTTP would send passwords in the clear."""
    if cert is None and bind not in ("127.0.0.1", "::1", "localhost"):
        raise ValueError(f"without --cert the page is served on 127.0.0.1 only, not {bind} "
                         "(passwords would cross the network unencrypted)")
    handler = type("CareHandler", (_Handler,), {"app": app})
    server = _Server((bind, port), handler)
    if cert is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert, key)
        # the handshake runs in the request's own thread: a slow client never stalls accept()
        server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)
    return server


def start_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="care-web", daemon=True)
    thread.start()
    return thread


# -- the command line ------------------------------------------------------------------------
def _read_password() -> str:
    if sys.stdin.isatty():
        import getpass
        first = getpass.getpass("new password: ")
        if getpass.getpass("again: ") != first:
            raise AccountsError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m org.web", description="The care worker's page.")
    sub = p.add_subparsers(dest="command", required=True)
    aw = sub.add_parser("add-worker", help="add a care worker, or set a new password")
    aw.add_argument("name")
    aw.add_argument("--accounts", type=Path, required=True)
    rw = sub.add_parser("remove-worker", help="remove a care worker's log-in")
    rw.add_argument("name")
    rw.add_argument("--accounts", type=Path, required=True)
    for cmd in ("assign", "unassign"):
        a = sub.add_parser(cmd, help=f"{cmd} a household to a care worker")
        a.add_argument("name")
        a.add_argument("household")
        a.add_argument("--db", type=db_location, required=True,
                       help="the organisation's store: a SQLite file or a postgresql:// URL")
    sv = sub.add_parser("serve", help="serve the page")
    sv.add_argument("--db", type=db_location, required=True,
                    help="a SQLite file, or a postgresql:// URL without a password (docs/care.md)")
    sv.add_argument("--accounts", type=Path, required=True)
    sv.add_argument("--bind", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8443)
    sv.add_argument("--cert", type=Path, help="TLS certificate (PEM); needed off the loopback")
    sv.add_argument("--key", type=Path, help="TLS key (PEM)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "add-worker":
            Accounts(args.accounts).set_password(args.name, _read_password())
            print(f"care worker {args.name} can sign in (accounts in {args.accounts})")
        elif args.command == "remove-worker":
            gone = Accounts(args.accounts).remove(args.name)
            print(f"care worker {args.name} " + ("removed" if gone else "was not there"))
        elif args.command in ("assign", "unassign"):
            if not HOUSEHOLD_RE.fullmatch(args.household):
                raise AccountsError(f"{args.household!r} is not a household id")
            store = OrgStore.open(args.db)
            (store.assign if args.command == "assign" else store.unassign)(args.name, args.household)
            print(f"{args.household} {'assigned to' if args.command == 'assign' else 'no longer assigned to'} "
                  f"{args.name}")
            store.close()
        else:
            store = OrgStore.open(args.db)
            # Each view is written to the store's access log; the organisation's service
            # (org/service.py, its own process) sends every entry from there to the household's
            # org/access within a second, so this page never logs in to the broker itself.
            server = make_server(CareWeb(store, Accounts(args.accounts)), args.bind, args.port,
                                 cert=args.cert, key=args.key)
            log.info("care worker's page on %s://%s:%d/", "https" if args.cert else "http",
                     args.bind, server.server_address[1])
            from core.sdnotify import run_until_stopped
            thread = threading.Thread(target=server.serve_forever, name="care-web-main", daemon=True)
            thread.start()
            try:   # READY, then the watchdog while the page's thread serves, until SIGTERM
                run_until_stopped(thread.is_alive, f"care worker's page on port "
                                                   f"{server.server_address[1]}")
            finally:
                server.shutdown()
                server.server_close()
                store.close()
    except (AccountsError, ValueError, OSError, ssl.SSLError) as e:
        print(f"org.web {args.command}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
