"""Bounded fuzzing of the site-file loader and ``meterhub check-config``: whatever the bytes, the only error
that escapes is a ConfigError whose every issue names the file, and the command exits 0 or 2 (issue 10:
never a traceback on any byte sequence)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from meterhub.checks import SITE_CHECKS
from meterhub.cli import app
from meterhub.config import ConfigError, SiteConfig, parse_config

DEMO = (Path(__file__).resolve().parents[2] / "examples" / "demo-site.yaml").read_bytes()
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_PIECES = [
    *"abcxyz019 :-[]{},#&*!|>'\"\n\t.~?%@`\\/=+",
    "site",
    "name",
    "circuits",
    "buses",
    "id",
    "kind",
    "ratio",
    "modbus-tcp",
    ".inf",
    "1e400",
    "<<",
    "!!binary",
    "---",
    "\x00",
    "\x07",
    "é",
    "\ufeff",
    "\udcff",
    "  ",
]
yamlish = st.lists(st.sampled_from(_PIECES), max_size=120).map("".join)


def _loads_or_config_error(source: str | bytes, *, checks: bool = False) -> None:
    try:
        cfg = parse_config(source, "fuzz.yaml", checks=SITE_CHECKS if checks else ())
    except ConfigError as exc:
        assert exc.issues and all(str(i).startswith("fuzz.yaml") for i in exc.issues)
    else:
        assert isinstance(cfg, SiteConfig)


@FUZZ
@given(st.binary(max_size=4000))
def test_random_bytes_give_a_config_or_a_config_error(data: bytes) -> None:
    _loads_or_config_error(data)


@FUZZ
@given(yamlish)
def test_random_yaml_like_text_gives_a_config_or_a_config_error(text: str) -> None:
    _loads_or_config_error(text)


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(0, len(DEMO) - 1), st.integers(0, 2), st.binary(min_size=1, max_size=8)),
        min_size=1,
        max_size=6,
    )
)
def test_a_mangled_demo_site_gives_a_config_or_a_config_error(edits: list[tuple[int, int, bytes]]) -> None:
    data = bytearray(DEMO)
    for pos, how, chunk in edits:
        pos = min(pos, len(data))
        if how == 0:
            data[pos:pos] = chunk  # insert
        elif how == 1:
            data[pos : pos + len(chunk)] = chunk  # overwrite
        else:
            del data[pos : pos + len(chunk)]  # delete
    _loads_or_config_error(bytes(data), checks=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=600), yamlish.map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_check_config_on_any_bytes_exits_0_or_2_without_a_traceback(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "site.yaml"
        path.write_bytes(data)
        res = CliRunner().invoke(app, ["check-config", str(path)])
    assert res.exit_code in (0, 2), res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output
