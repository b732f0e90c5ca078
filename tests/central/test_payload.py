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
