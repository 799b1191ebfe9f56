"""The household's consent and access log as the installer and a restart see them (docs/care.md):
consent starts from the plan, minus what a partner withdrew, and survives a restart of the share
service; giving it again goes through the installer (`timeout-hub consent --give`) and is logged;
`timeout-hub access-log` prints the log; wrong input is one sentence, never a traceback."""
from __future__ import annotations

import logging

import pyrage

from firmware.cli import main
from firmware.share.filter import ConsentFilter
from mqtt import schemas
from mqtt.shared import ConsentSet
from tests.conftest import HOUSEHOLD, wait_until
from tests.helpers.plans import write_plan

# the example plan: a shares procedure, call, evaluation; b also checkin
A = frozenset({"procedure", "call", "evaluation"})


def start(bus, state, plan_consent: ConsentSet) -> ConsentFilter:
    f = ConsentFilter(bus("bridge", start=False), state, base=plan_consent, retention_days=90,
                      key=pyrage.x25519.Identity.generate().to_public()).start()
    assert f.bus.wait_subscribed(5)
    return f


def test_consent_survives_a_restart_and_only_the_installer_gives_it_again(bus, tmp_path, capsys):
    plan, state = write_plan(tmp_path / "household.toml", HOUSEHOLD), tmp_path / "share"
    base = ConsentSet(a=A, b=A | {"checkin"})
    f = start(bus, state, base)
    f.withdraw("a", ["call"], who="a")
    f.stop()
    f = start(bus, state, base)                        # the service restarts
    try:
        assert f.consent().of("a") == A - {"call"} and f.consent().of("b") == A | {"checkin"}
        assert main(["consent", "--show", "--plan", str(plan), "--state-dir", str(state)]) == 0
        assert "partner a: procedure, evaluation\n" in capsys.readouterr().out
        assert main(["consent", "--give", "call", "--partner", "a", "--plan", str(plan),
                     "--state-dir", str(state)]) == 0
        assert "partner a: procedure, call, evaluation\n" in capsys.readouterr().out
        assert f.consent().of("a") == A                  # the running service sees it at once
        assert f.queued() == 2     # two notices for the organisation: the withdrawal, the consent
        assert main(["access-log", "--state-dir", str(state)]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [ln.split()[2:5] for ln in lines] == [["a", "consent.withdraw", "a:call"],
                                                     ["installer", "consent.give", "a:call"]]
    finally:
        f.stop()


def test_wrong_input_is_one_sentence_and_a_logged_reason_never_a_crash(bus, tmp_path, capsys,
                                                                       caplog):
    caplog.set_level(logging.WARNING)
    plan, state = write_plan(tmp_path / "household.toml", HOUSEHOLD), tmp_path / "share"
    assert main(["consent", "--give", "call", "--plan", str(plan), "--state-dir", str(state)]) == 2
    assert capsys.readouterr().err == "timeout-hub consent: --give needs --partner a or b.\n"
    (tmp_path / "file").write_text("")
    assert main(["access-log", "--state-dir", str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("timeout-hub access-log: ") and "is not a folder" in err
    assert err.count("\n") == 1
    assert main(["consent", "--show", "--plan", str(tmp_path / "none.toml"),
                 "--state-dir", str(state)]) == 2
    assert "Traceback" not in capsys.readouterr().err
    # on the bus: a request that is not the contract's is dropped with its reason, the service
    # goes on, and the organisation's longest account id still reaches the log
    f = start(bus, state, ConsentSet(a=A, b=A))
    caller = bus("caller")
    replies = []
    caller.on("partner/a/share-reply", replies.append)
    try:
        caller._client.publish(f"timeout/{HOUSEHOLD}/partner/a/share-request",
                               b'{"v": 1, "id": "x", "kind": "withdraw", "categories": ["all"]}',
                               qos=1)
        assert wait_until(lambda: "dropped message on partner/a/share-request: invalid "
                                  "ShareRequest" in caplog.text, 5)
        f.bus.publish("org/access", schemas.AccessNotice(worker="w" * 48, action="report",
                                                         allowed=True))
        caller.publish("partner/a/share-request", schemas.ShareRequest(kind="access_log"))
        assert wait_until(lambda: replies, 5) and f.alive()
        assert [e.who for e in replies[0].payload.entries] == ["worker." + "w" * 48]
        assert f.consent().of("a") == A
    finally:
        f.stop()
