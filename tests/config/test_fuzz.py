"""Bounded fuzzing of the site-file loader: whatever the bytes, the only error that escapes is a
ConfigError whose every issue names the file (issue 10: never a traceback on any byte sequence)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterhub.checks import SITE_CHECKS
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
