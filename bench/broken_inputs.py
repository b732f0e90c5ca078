"""Broken inputs of issue 10 (§6 site files, §8 CSV import, §9 NPZ records): prints one JSON object.

Each case is written to a temporary folder and given to the real CLI (``python -m meterhub``) as a user
would: ``check-config`` for site files, ``import`` for CSV, ``analyze`` for NPZ. Per case: the exit code,
whether a traceback leaked, and the first line of the message. The expectation: exit 2 (1 for an import
that stored its good rows), never a traceback, and a message naming file, line and field.

Usage: ``.venv/bin/python bench/broken_inputs.py``
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

BASE = """site: {name: x, timezone: UTC}
buses: [{id: b, kind: modbus-tcp, host: 127.0.0.1, port: 1502}]
devices: [{id: d, bus: b, unit: 1, profile: eastron-sdm630}]
"""
CIRCUIT = (
    "circuits: [{id: c, device: d, channels: [1, 2, 3], wiring: 3P4W, ct: {kind: adapter-5a, ratio: %s}}]\n"
)

SITE_FILES: dict[str, bytes] = {
    # YAML 1.1 read this as 60001 (base 60); YAML 1.2 reads text, a valid ratio 1000/1: exit 0
    "ratio_1000_colon_1": (BASE + CIRCUIT % "1000:1").encode(),
    "duplicate_key": (BASE + "site: {name: y}\n").encode(),
    "ratio_inf": (BASE + CIRCUIT % ".inf").encode(),
    "ratio_1e400": (BASE + CIRCUIT % "1e400").encode(),
    "unit_true": (
        BASE + "io: {points: [{id: p, kind: pulse, device: d, channel: 1, unit: true}]}\n"
    ).encode(),
    "panel_cycle": (BASE + "panels: [{id: a, parent: b}, {id: b, parent: a}]\n").encode(),
    "utf16": "site: {name: x}\n".encode("utf-16"),
    "latin1": "site: {name: Müller}\n".encode("latin-1"),
    "binary": bytes(range(256)),
    "control_character": b'site: {name: "a\x07b"}\n',
    "deep_nesting": b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n",
    "5000_digit_integer": b"site: {name: x, timezone: UTC}\nweb: {port: " + b"9" * 5000 + b"}\n",
    "alarms_section": (BASE + "alarms: {rules: []}\n").encode(),
    "bus_kind_dlms": b"site: {name: x, timezone: UTC}\nbuses: [{id: b, kind: dlms, host: 127.0.0.1, port: 4059}]\n",
    "markup_in_id": (
        BASE + 'circuits: [{id: "[bold]c[/bold]", device: d, channels: [1], wiring: 1P2W}]\n'
    ).encode(),
}


def _csv_cases() -> dict[str, bytes]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = ["timestamp,circuit,quantity,phase,value"]
    rows += [
        f"{(t0 + timedelta(minutes=i)).isoformat()},c1,active_power,total,{1000 + i % 7}"
        for i in range(120_000)
    ]
    lines = [r.encode() for r in rows]
    lines[110_001] = lines[110_001].replace(b",10", b",1\xff")  # line 110,002 of the file
    bad_utf8 = b"\n".join(lines) + b"\n"
    ranges = (
        "timestamp,circuit,quantity,phase,value\n"
        "1969-12-31T00:00:00Z,c,active_power,total,1\n"
        "3001-01-01T00:00:00Z,c,active_power,total,1\n"
        "2026-01-01T00:00:00Z,c,energy_active_import,total,1e15\n"
        "2026-01-01T00:00:00Z,c,active_power,total,1.7e308\n"
        "2026-01-01T00:01:00Z,c,voltage,L1," + "9" * 131_072 + "\n"
    ).encode()
    return {"invalid_utf8_at_line_110002": bad_utf8, "out_of_range_rows": ranges}


def _npz_cases() -> dict[str, bytes]:
    def npz(**arrays: np.ndarray) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        return buf.getvalue()

    t = np.arange(6400) / 6400
    return {
        "empty": b"",
        "not_a_zip": b"PK\x03\x04garbage",
        "complex_samples": npz(
            fs=np.array(6400.0), v_l1=np.exp(2j * np.pi * 50 * t), i_l1=np.ones(6400, complex)
        ),
        "no_channels": npz(fs=np.array(6400.0)),
        "object_array": npz(fs=np.array(6400.0), v_l1=np.array(["x"] * 10)),
    }


def _run(args: list[str], cwd: Path, prefer: str = "") -> dict[str, object]:
    r = subprocess.run(
        [sys.executable, "-m", "meterhub", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )
    out = r.stdout + r.stderr
    lines = [ln.strip() for ln in out.splitlines() if ln.strip() and "━" not in ln]
    first = next((ln for ln in lines if prefer and prefer in ln), "") or next(
        (ln for ln in lines if ":" in ln and not ln.startswith(("configuration error", "nothing"))),
        lines[-1] if lines else "",
    )
    return {"exit": r.returncode, "traceback": "Traceback" in out, "message": first[:200]}


def main() -> None:
    result: dict[str, dict[str, object]] = {"check-config": {}, "import": {}, "analyze": {}}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for name, data in SITE_FILES.items():
            (d / f"{name}.yaml").write_bytes(data)
            result["check-config"][name] = _run(["check-config", f"{name}.yaml"], d)
        for name, data in _csv_cases().items():
            (d / f"{name}.csv").write_bytes(data)
            result["import"][name] = _run(
                ["import", f"{name}.csv", "--data", f"data-{name}"], d, f"{name}.csv:"
            )
        for name, data in _npz_cases().items():
            (d / f"{name}.npz").write_bytes(data)
            result["analyze"][name] = _run(["analyze", f"{name}.npz"], d)
    cases = [c for group in result.values() for c in group.values()]
    result["summary"] = {  # type: ignore[assignment]
        "cases": len(cases),
        "tracebacks": sum(bool(c["traceback"]) for c in cases),
        "exit_codes": sorted({int(c["exit"]) for c in cases}),  # type: ignore[call-overload]
    }
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
