"""docs/mqtt.md is the contract users read; it must say what the code does."""
from __future__ import annotations

from pathlib import Path

from mqtt import contract, docgen, schemas

DOC = Path(__file__).resolve().parents[1] / "docs" / "mqtt.md"

FORBIDDEN_FIELDS = {"name", "phone", "number", "lat", "lon", "latitude", "longitude", "audio",
                    "samples", "location", "position", "address"}


def test_generated_part_of_docs_is_current():
    text = DOC.read_text()
    assert docgen.splice(text) == text, "docs/mqtt.md is out of date: run `make docs`"


def test_no_payload_has_a_field_for_personal_data():
    for spec in contract.TOPICS:
        if spec.schema is None:
            continue
        props = set(spec.schema.model_json_schema().get("properties", {}))
        assert not props & FORBIDDEN_FIELDS, (spec.pattern, props & FORBIDDEN_FIELDS)
        assert {"v", "id", "ts"} <= props, spec.pattern


def test_only_the_hub_writes_state_and_events_and_nobody_reads_sound_remotely():
    assert contract.lookup("state").publishers == {"hub"}
    assert contract.lookup("events").publishers == {"hub"}
    assert "bridge" not in contract.lookup("sensor/sound").subscribers
    for p in schemas.PARTNERS:
        other = "b" if p == "a" else "a"
        assert f"wearable-{other}" not in contract.lookup(f"partner/{p}/input").publishers
        assert f"wearable-{other}" not in contract.lookup(f"partner/{p}/prompt").subscribers


def test_every_fault_code_the_services_raise_has_a_meaning():
    """Issue 13: a fault class nobody documented lit the panel's LED with no explanation."""
    import re

    from mqtt.faults import fault_class
    root = Path(__file__).resolve().parents[1]
    raised = set()
    for pkg in ("firmware", "dsp", "ble"):
        for f in (root / pkg).rglob("*.py"):
            raised |= set(re.findall(r'"((?:mic|ble|modem|clock|service|storage)\.[a-z_]+)\b', f.read_text()))
    raised -= {"ble.replay_cli"}                      # a module name, not a fault
    assert {"mic.unplugged", "modem.no_sim", "clock.unsynchronised", "ble.scanner_down"} <= raised
    assert not [c for c in raised if fault_class(c) is None and fault_class(c + ".x") is None], raised


def test_every_event_the_procedure_logs_is_a_type_the_contract_carries():
    """An event type missing from the contract would fail validation when the hub publishes it."""
    import re
    import typing

    from mqtt.schemas import EventType
    root = Path(__file__).resolve().parents[1]
    used = set()
    for f in ("firmware/hub/procedure.py", "firmware/hub/service.py"):
        used |= set(re.findall(r'_event\("([a-z_]+)"', (root / f).read_text()))
        used |= set(re.findall(r'\bts, "([a-z_]+)", "', (root / f).read_text()))   # LoggedEvent(...)
    assert {"started", "panel_answer_ignored", "fault"} <= used
    assert used <= set(typing.get_args(EventType)), used - set(typing.get_args(EventType))
