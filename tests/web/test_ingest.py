"""``POST /api/v1/ingest``: an admin token, gzip or plain JSON arrays of meterhub-json/1 messages, stored
under ``<site>/<circuit>`` once however often they are sent; bad bodies refused with the index and field."""

from __future__ import annotations

import gzip
import json
from typing import Any

from fastapi.testclient import TestClient

from meterhub.model.readings import Quality, SeriesKey
from meterhub.model.topology import Phase
from meterhub.runtime import Gateway
from meterhub.web.ingest import INGEST_MAX

from .conftest import T0, add_user

TS = int(T0) + 60


def message(
    site: str = "s1", circuit: str = "main", ts: int = TS, p: float = 7200.0, **over: Any
) -> dict[str, Any]:
    """A meterhub-json/1 message as a publishing gateway renders it: P total and V L1."""
    msg: dict[str, Any] = {
        "schema": "meterhub-json/1",
        "key": f"{site}/{circuit}/{ts}",
        "site": site,
        "circuit": circuit,
        "name": "Main incomer",
        "zone": None,
        "start": "2025-11-22T04:00:00Z",
        "end": "2025-11-22T04:01:00Z",
        "ts": ts,
        "interval": 60,
        "values": [
            {
                "quantity": "active_power",
                "phase": "total",
                "value": p,
                "unit": "W",
                "kind": "instantaneous",
                "obis": "1.0.1.7.0",
                "quality": "good",
                "samples": 60,
            },
            {
                "quantity": "voltage",
                "phase": "L1",
                "value": 230.5,
                "unit": "V",
                "kind": "instantaneous",
                "obis": "1.0.32.7.0",
                "quality": "estimated",
                "samples": 60,
            },
        ],
    }
    msg.update(over)
    return msg


def token(client: TestClient, role: str = "admin") -> dict[str, str]:
    add_user(client, f"up-{role}", role)
    _, secret = client.app.state.auth.store.create_token(f"up-{role}", "uploader")  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {secret}"}


def post(
    client: TestClient, auth: dict[str, str], messages: Any, *, gz: bool = True, key: str | None = None
) -> Any:
    body = json.dumps(messages).encode()
    headers = {**auth, "Content-Type": "application/json"}
    if gz:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post("/api/v1/ingest", content=body, headers=headers)


def test_gzip_batch_is_stored_under_site_slash_circuit(client: TestClient, gateway: Gateway) -> None:
    auth = token(client)
    r = post(client, auth, [message(), message(ts=TS + 60, p=7300.0), message(site="s2", p=100.0)])
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 3, "duplicates": 0, "refused": []}
    st = gateway.storage
    p1 = SeriesKey("s1/main", "active_power", Phase.TOTAL)
    assert st.value_at(p1, TS) == (TS, 7200.0)
    assert st.value_at(p1, TS + 60) == (TS + 60, 7300.0)
    # Two sites with the same circuit id stay apart.
    assert st.value_at(SeriesKey("s2/main", "active_power", Phase.TOTAL), TS) == (TS, 100.0)
    points = st.history(SeriesKey("s1/main", "voltage", Phase.L1), TS, TS + 1)
    assert [(p.ts, p.last, p.quality) for p in points] == [(TS, 230.5, Quality.ESTIMATED)]


def test_the_same_upload_twice_stores_once(client: TestClient, gateway: Gateway) -> None:
    auth = token(client)
    batch = [message(), message(ts=TS + 60)]
    first = post(client, auth, batch, key="cloud:1-2")
    assert first.json() == {"accepted": 2, "duplicates": 0, "refused": []}
    # Same Idempotency-Key and body: answered from memory.
    assert post(client, auth, batch, key="cloud:1-2").json() == {
        "accepted": 0,
        "duplicates": 2,
        "refused": [],
    }
    # No key, plain JSON, and overlapping with a new message: the stored ones are recognised by (series, ts).
    again = post(client, auth, [*batch, message(ts=TS + 120)], gz=False)
    assert again.json() == {"accepted": 1, "duplicates": 2, "refused": []}
    # The same message twice in one body counts once.
    assert post(client, auth, [message(ts=TS + 180)] * 2).json() == {
        "accepted": 1,
        "duplicates": 1,
        "refused": [],
    }
    points = gateway.storage.history(SeriesKey("s1/main", "active_power", Phase.TOTAL), TS, TS + 1000)
    assert [p.ts for p in points] == [TS, TS + 60, TS + 120, TS + 180]


def test_a_reused_key_with_another_body_is_not_mistaken_for_a_repeat(
    client: TestClient, gateway: Gateway
) -> None:
    """An uploader whose outbox file was replaced starts its ids again at 1: its keys repeat, its data is new."""
    auth = token(client)
    assert post(client, auth, [message()], key="cloud:1-1").json()["accepted"] == 1
    assert post(client, auth, [message(ts=TS + 60)], key="cloud:1-1").json()["accepted"] == 1


def test_values_the_catalogue_does_not_allow_are_refused_alone(client: TestClient, gateway: Gateway) -> None:
    auth = token(client)
    bad_unit = message(ts=TS + 60)
    bad_unit["values"][0]["unit"] = "kW"
    unknown = message(ts=TS + 120)
    unknown["values"][1]["quantity"] = "warp_factor"
    r = post(client, auth, [message(), bad_unit, unknown])
    assert r.status_code == 200
    assert r.json() == {
        "accepted": 1,
        "duplicates": 0,
        "refused": [
            {"index": 1, "reason": "values[0].unit: 'kW' is not the catalogue unit 'W' of active_power"},
            {
                "index": 2,
                "reason": "values[1].quantity: 'warp_factor' is not a catalogue quantity this gateway stores",
            },
        ],
    }
    assert gateway.storage.value_at(SeriesKey("s1/main", "active_power", Phase.TOTAL), TS + 1000) == (
        TS,
        7200.0,
    )


def test_a_non_finite_value_is_refused(client: TestClient) -> None:
    auth = token(client)
    body = json.dumps([message()]).replace("7200.0", "NaN")
    r = client.post("/api/v1/ingest", content=body, headers=auth)
    assert r.json()["refused"] == [{"index": 0, "reason": "values[0].value: not a finite number"}]


def test_malformed_messages_are_422_naming_index_and_field(client: TestClient, gateway: Gateway) -> None:
    auth = token(client)
    no_ts = message(ts=TS + 60)
    del no_ts["ts"]
    r = post(client, auth, [message(), no_ts])
    assert r.status_code == 422
    assert r.json()["detail"] == [
        {"loc": ["body", 1, "ts"], "msg": "message 1: missing field 'ts'", "type": "value_error"}
    ]
    bad_phase = message()
    bad_phase["values"][1]["phase"] = "L4"
    detail = post(client, auth, [bad_phase]).json()["detail"][0]
    assert detail["loc"] == ["body", 0, "values[1].phase"]
    wrong_key = post(client, auth, [message(key="s1/other/1")]).json()["detail"][0]
    assert wrong_key["loc"] == ["body", 0, "key"]
    assert (
        post(client, auth, {"not": "an array"})
        .json()["detail"][0]["msg"]
        .startswith("the body must be a JSON array")
    )
    assert gateway.storage.series() == []  # nothing of a refused body was stored


def test_tokens_and_roles(client: TestClient) -> None:
    assert post(client, {}, [message()]).status_code == 401
    assert post(client, {"Authorization": "Bearer mh_wrong"}, [message()]).status_code == 401
    assert post(client, token(client, "reader"), [message()]).status_code == 403
    assert post(client, token(client, "admin"), [message()]).status_code == 200


def test_a_gzip_bomb_is_refused_without_inflating_it(client: TestClient) -> None:
    auth = token(client)
    bomb = gzip.compress(b"[" + b" " * (INGEST_MAX + 1024) + b"]", compresslevel=9)
    assert len(bomb) < 100_000  # 16 MiB of blanks compress to ~16 KB: under the 1 MiB body limit
    r = client.post("/api/v1/ingest", content=bomb, headers={**auth, "Content-Encoding": "gzip"})
    assert r.status_code == 413
    assert "decompressed body is larger than 16777216 bytes" in r.json()["detail"]
    # A compressed body over the app's 1 MiB body limit is refused before it is read.
    big = client.post("/api/v1/ingest", content=b"x" * (1024 * 1024 + 1), headers=auth)
    assert big.status_code == 413
    other = client.post("/api/v1/ingest", content=b"[]", headers={**auth, "Content-Encoding": "br"})
    assert other.status_code == 415
    broken = client.post(
        "/api/v1/ingest", content=gzip.compress(b"[]")[:-6], headers={**auth, "Content-Encoding": "gzip"}
    )
    assert broken.status_code == 400 and "truncated" in broken.json()["detail"]


def test_odd_json_is_answered_not_crashed_on(client: TestClient) -> None:
    auth = token(client)
    huge = json.dumps([message()]).replace("7200.0", "1" + "0" * 400)
    assert client.post("/api/v1/ingest", content=huge, headers=auth).json()["refused"] == [
        {"index": 0, "reason": "values[0].value: not a finite number"}
    ]
    odd_phase = message()
    odd_phase["values"][0]["phase"] = ["L1"]
    assert post(client, auth, [odd_phase]).json()["detail"][0]["loc"] == ["body", 0, "values[0].phase"]
    odd_quality = message()
    odd_quality["values"][0]["quality"] = {"good": 1}
    assert post(client, auth, [odd_quality]).json()["detail"][0]["loc"] == ["body", 0, "values[0].quality"]
    assert (
        post(client, auth, [1, 2]).json()["detail"][0]["msg"] == "message 0: a message must be a JSON object"
    )
    assert post(client, auth, []).json() == {"accepted": 0, "duplicates": 0, "refused": []}
