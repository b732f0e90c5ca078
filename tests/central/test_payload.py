"""meterhub-json/1 as central checks it: what is accepted, and what is refused with which words."""

from __future__ import annotations

import json

import pytest

from meterhub.central.payload import (
    PayloadError,
    TopicKind,
    parse_circuit_message,
    parse_gateway_state,
    parse_topic,
)
from meterhub.central.simulate import circuit_message

GOOD = circuit_message("site-1", 1, 0, 12, 1_796_572_560, 60)


def _with(**changes: object) -> bytes:
    msg = json.loads(GOOD)
    msg.update(changes)
    return json.dumps(msg).encode()


def test_a_simulated_message_is_accepted_with_its_values() -> None:
    m = parse_circuit_message(GOOD, "site-1", "c0")
    assert (m.site, m.circuit, m.ts, m.interval, len(m.points)) == ("site-1", "c0", 1_796_572_560, 60.0, 12)
    p = next(p for p in m.points if p.quantity == "active_power" and p.phase == "total")
    assert (p.value, p.unit, p.quality, p.samples) == (2000.0, "W", 0, 60)


@pytest.mark.parametrize(
    ("payload", "site", "words"),
    [
        (GOOD, "site-2", "site 'site-1' disagrees with the topic's site 'site-2'"),
        (b"{not json", "site-1", "not JSON"),
        (_with(schema="meterhub-json/2"), "site-1", "central reads meterhub-json/1"),
        (_with(key="site-1/c0/1"), "site-1", "key 'site-1/c0/1' is not site-1/c0/1796572560"),
        (_with(extra=1), "site-1", "unknown field(s) extra"),
        (_with(name="a\x00b"), "site-1", "NUL"),
        (_with(ts="1796572560"), "site-1", "ts: str"),
        (_with(values=[{"quantity": "wattage"}]), "site-1", "values[0].: unknown field(s)"),
    ],
)
def test_refusals_name_the_field(payload: bytes, site: str, words: str) -> None:
    with pytest.raises(PayloadError) as err:
        parse_circuit_message(payload, site, "c0")
    assert words in str(err.value) or words.split(":")[0] in str(err.value)


def test_unknown_quantity_is_refused() -> None:
    msg = json.loads(GOOD)
    msg["values"][0]["quantity"] = "wattage"
    with pytest.raises(PayloadError, match="'wattage' is not in meterhub's catalogue"):
        parse_circuit_message(json.dumps(msg).encode(), "site-1", "c0")


def test_topics_and_gateway_state() -> None:
    assert parse_topic("meterhub/s1/circuits/grid") == (TopicKind.CIRCUIT, "s1", "grid")
    assert parse_topic("meterhub/s1/ha/_gateway/state") == (TopicKind.GATEWAY_STATE, "s1", None)
    assert parse_topic("meterhub/s1/rtdata") is None
    state = parse_gateway_state(
        b'{"publish_a_backlog": 3, "publish_b_backlog": 4, "publish_a_connected": "ON"}', "s1"
    )
    assert state is not None and state.backlog == 7
    assert parse_gateway_state(b'{"x": 1}', "s1") is None


def _value_with(i: int = 0, **changes: object) -> bytes:
    msg = json.loads(GOOD)
    msg["values"][i].update(changes)
    return json.dumps(msg).encode()


def test_a_message_reads_the_same_the_first_time_and_from_the_checked_descriptions() -> None:
    # the first parse checks every field; later ones take the fast path for known descriptions
    first = parse_circuit_message(GOOD, "site-1", "c0")
    again = parse_circuit_message(GOOD, "site-1", "c0")
    assert first == again
    assert again.shape is first.shape  # one shape object per circuit: one series-id lookup
    assert len(again.values) == len(again.qualities) == len(again.samples) == 12
    assert set(again.samples) == {60} and set(again.qualities) == {0}


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        # the standard decoder reads NaN and Infinity; they are refused field by field, as before
        (GOOD.replace(b'"value":2000.0', b'"value":NaN', 1), "values[3].value: not a finite number"),
        (GOOD.replace(b'"value":2000.0', b'"value":-Infinity', 1), "values[3].value: not a finite number"),
        (GOOD.replace(b'"value":2000.0', b'"value":1e999', 1), "values[3].value: not a finite number"),
        # an integer beyond a double: refused, not an OverflowError in the worker
        (
            GOOD.replace(b'"value":2000.0', b'"value":' + b"9" * 400, 1),
            "values[3].value: not a finite number",
        ),
        (_value_with(3, samples=2**31), "values[3].samples: 2147483648 is more than 2147483647"),
        (_value_with(3, samples=0), "values[3].samples: at least 1"),
        (_value_with(3, value=True), "values[3].value: bool 'True' is not an integer or a number"),
        (_value_with(3, quality="bad"), "values[3].quality 'bad': one of good estimated flagged"),
        (_value_with(3, unit=["W"]), "values[3].unit: list"),
        (_value_with(3, phase="L4"), "values[3].phase 'L4': one of L1 L2 L3 N total null"),
    ],
)
def test_a_known_description_with_a_bad_field_is_still_refused_with_its_words(
    payload: bytes, words: str
) -> None:
    parse_circuit_message(GOOD, "site-1", "c0")  # every description of GOOD is known now
    # values[3] is active_power/total, 2000 W (sorted by quantity and phase: L1 L2 L3 total)
    assert json.loads(GOOD)["values"][3]["value"] == 2000.0 and GOOD.count(b'"value":2000.0') == 1
    with pytest.raises(PayloadError) as err:
        parse_circuit_message(payload, "site-1", "c0")
    assert words in str(err.value)


def test_a_message_without_values_is_accepted_with_no_points() -> None:
    m = parse_circuit_message(_with(values=[]), "site-1", "c0")
    assert (m.shape, m.values, m.points, m.ts) == ((), (), (), 1_796_572_560)


def test_an_integer_value_is_stored_as_a_float() -> None:
    m = parse_circuit_message(_value_with(3, value=2000), "site-1", "c0")
    assert m.values[3] == 2000.0 and type(m.values[3]) is float
