"""Step 9, test calls and a test SMS: every contact in the caller file is called through the
caller's own modem layer (the same dial, spoken message and "press 1" as a real alert) and sent
one test SMS. A call counts only when the contact pressed 1 (R12); anything else is reported with
what to do. The message says it is a test, so nobody is alarmed; no number leaves this module."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from firmware.caller.config import CallerConfig
from firmware.provision.texts import t

TEST_CALL = {
    "nl": ("Dit is een test van de time-out hub van huishouden {code}. Er is niets aan de hand. "
           "Druk op 1 om te laten weten dat u dit bericht hoort."),
    "en": ("This is a test of the time-out hub of household {code}. Nothing has happened. "
           "Press 1 to let us know you hear this message."),
}
TEST_SMS = {
    "nl": "Test van de time-out hub van huishouden {code}. Er is niets aan de hand.",
    "en": "Test of the time-out hub of household {code}. Nothing has happened.",
}


@dataclass(frozen=True)
class ContactTest:
    partner: str
    position: int          # 1-3, the calling order: how the record names a contact (no number)
    call: str              # the modem layer's outcome: acknowledged, answered_no_ack, busy, ...
    sms: bool              # the network took the test SMS

    @property
    def passed(self) -> bool:
        return self.call == "acknowledged" and self.sms


def test_contacts(cfg: CallerConfig, lang: str, say: Callable[[str], None],
                  only: set[tuple[str, int]] | None = None) -> list[ContactTest]:
    """Call and text each contact (or only those in `only`) in the plan's order."""
    from firmware.caller.modem.errors import ModemError
    from firmware.caller.modem.sim7600 import Modem
    modem = Modem(cfg.modem_port)
    try:
        modem.init()
        out = []
        for partner in ("a", "b"):
            for pos, contact in enumerate(cfg.contacts.get(partner, []), 1):
                if only is not None and (partner, pos) not in only:
                    continue
                say("  " + t(lang, "calling", p=partner, n=pos))
                report = modem.call(contact.number, TEST_CALL[contact.language].format(code=cfg.code_word),
                                    ring_timeout=cfg.ring_seconds * cfg.time_scale,
                                    repeats=cfg.message_repeats)
                try:
                    modem.send_sms(contact.number, TEST_SMS[contact.language].format(code=cfg.code_word))
                    sms = True
                except ModemError:
                    sms = False
                result = ContactTest(partner, pos, report.outcome, sms)
                say("  " + line(result, lang))
                out.append(result)
        return out
    finally:
        modem.close()


def line(r: ContactTest, lang: str) -> str:
    """One line for the installer and the record: the contact by partner and position only."""
    if r.passed:
        return t(lang, "call_ok", p=r.partner, n=r.position)
    if r.call != "acknowledged":
        return t(lang, "call_not_ok", p=r.partner, n=r.position, outcome=r.call)
    return t(lang, "sms_not_ok", p=r.partner, n=r.position)
