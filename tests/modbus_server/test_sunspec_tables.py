"""Our SunSpec point tables (meterhub.publish.sunspec) against the SunSpec Alliance's own model
definitions, the JSON files pysunspec2 ships (sunspec2/models/json/model_N.json)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import sunspec2

from meterhub.model.topology import Phase
from meterhub.publish.sunspec import (
    COMMON,
    END,
    SUNS,
    Identity,
    Point,
    PointType,
    decode_value,
    meter_points,
    render_device,
)

MODELS = Path(sunspec2.__file__).parent / "models" / "json"


def _definition(model: int) -> list[dict[str, object]]:
    return json.loads((MODELS / f"model_{model}.json").read_text())["group"]["points"]


def _ours(points: tuple[Point, ...]) -> list[tuple[str, str, int, str | None]]:
    return [(p.name, p.type.value, p.size, p.sf) for p in points]


def _theirs(model: int) -> list[tuple[str, str, int, str | None]]:
    return [(str(p["name"]), str(p["type"]), int(p.get("size", 1)), p.get("sf")) for p in _definition(model)]  # type: ignore[call-overload,misc]


def test_common_model_matches_sunspec_model_1() -> None:
    assert _ours(COMMON) == _theirs(1)
    assert sum(p.size for p in COMMON) == 68


@pytest.mark.parametrize("model", [201, 202, 203, 204, 211, 212, 213, 214])
def test_meter_model_points_match_the_sunspec_definition(model: int) -> None:
    assert _ours(meter_points(model)) == _theirs(model)


@pytest.mark.parametrize(("model", "length"), [(201, 105), (203, 105), (213, 124), (214, 124)])
def test_meter_model_length_is_the_registers_after_id_and_l(model: int, length: int) -> None:
    assert sum(p.size for p in meter_points(model)) - 2 == length


def test_every_mandatory_value_point_is_fed_from_the_catalogue() -> None:
    for model in (201, 202, 203, 204, 211, 212, 213, 214):
        ours = {p.name: p for p in meter_points(model)}
        for d in _definition(model):
            if d.get("mandatory") == "M" and d["type"] in ("int16", "acc32", "float32"):
                assert ours[str(d["name"])].quantity is not None, (model, d["name"])


def test_a_rendered_203_reads_back_by_hand() -> None:
    values = {
        ("current", Phase.L1): 10.0,
        ("current", Phase.L2): 12.5,
        ("current", Phase.L3): 7.25,
        ("voltage", Phase.L1): 230.4,
        ("active_power", Phase.TOTAL): 41_234.0,  # > 32767 W: W_SF becomes 1 (10 W steps)
        ("power_factor", Phase.TOTAL): -0.95,
        ("energy_active_import", Phase.TOTAL): 123_456_789.4,
    }
    regs = render_device(
        Identity("meterhub", "circuit", "3P4W", "1.0", "grid", 3),
        203,
        meter_points(203),
        lambda q, ph: values.get((q, ph)),
        (Phase.L1, Phase.L2, Phase.L3),
    )
    assert tuple(regs[:2]) == SUNS and tuple(regs[-2:]) == END
    assert regs[2:4] == [1, 66]
    assert struct.pack(">16H", *regs[4:20]).rstrip(b"\0") == b"meterhub"
    meter = regs[70:-2]
    assert meter[:2] == [203, 105]
    offsets, at = {}, 0
    for p in meter_points(203):
        offsets[p.name] = (p, meter[at : at + p.size])
        at += p.size
    sfs = {
        n: (r[0] - 0x10000 if r[0] & 0x8000 else r[0])
        for n, (p, r) in offsets.items()
        if p.type is PointType.SUNSSF
    }
    assert sfs["A_SF"] == -2 and sfs["W_SF"] == 1 and sfs["TotWh_SF"] == 0
    assert offsets["A"][1] == [2975]  # 29.75 A, the sum of the phases, in 0.01 A
    assert offsets["AphC"][1] == [725]
    assert offsets["PhVphA"][1] == [2304]
    assert offsets["PhVphB"][1] == [0x8000]  # no value: not implemented
    assert offsets["W"][1] == [4123]  # 41 230 W in 10 W steps
    assert offsets["PF"][1] == [(-9500) & 0xFFFF]  # -95.00 %
    assert offsets["TotWhImp"][1] == [123_456_789 >> 16, 123_456_789 & 0xFFFF]
    assert offsets["TotWhExp"][1] == [0, 0]  # acc32 not implemented
    assert offsets["Evt"][1] == [0, 0]
    p, r = offsets["PF"]
    assert decode_value(p, r, sfs) == pytest.approx(-0.95)
