"""Logging: the console shows a failure in one line, the JSON log file keeps its traceback."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from meterhub.logs import setup_logging


@pytest.fixture
def restore_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        h.close()
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_console_shows_the_exception_in_one_line_and_the_file_keeps_the_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_root_logger: None
) -> None:
    setup_logging(tmp_path)
    try:
        raise TimeoutError("unit 3 did not answer within 1.0 s")
    except TimeoutError:
        logging.getLogger("meterhub.test").exception("poll failed", extra={"device": "m3"})
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.rstrip().endswith(
        "meterhub.test: poll failed device=m3 (TimeoutError: unit 3 did not answer within 1.0 s; "
        "traceback in meterhub.log)"
    )
    for h in logging.getLogger().handlers:
        h.flush()
    record = json.loads((tmp_path / "meterhub.log").read_text(encoding="utf-8").splitlines()[-1])
    assert record["msg"] == "poll failed" and record["device"] == "m3"
    assert record["exc"].startswith("Traceback") and "unit 3 did not answer" in record["exc"]
