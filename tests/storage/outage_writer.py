"""A storage writer process for the SIGTERM-during-outage test (run as a script, not collected).

Usage: python outage_writer.py DSN DATA_DIR REPORT_FILE

Writes 5 series at one reading per series every 20 ms of wall time (timestamps 1 s apart from
2027-01-01), flushes every 0.2 s like the gateway's flusher, prints ``flushed`` after the first
flush and, on SIGTERM, stops writing, closes the storage (which spools when the database is away)
and writes the number of readings it produced to REPORT_FILE, then exits 0 — as ``Gateway.stop()``
does on SIGTERM.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

from meterhub.config.schema import StorageConfig
from meterhub.model.readings import Reading
from meterhub.model.topology import Phase
from meterhub.storage import open_storage

T0 = 1_798_761_600.0


def main() -> int:
    dsn, data_dir, report = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    stop = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    storage = open_storage(StorageConfig(backend="postgres", dsn=dsn), data_dir)
    written = 0
    i = 0
    last_flush = time.monotonic()
    while not stop:
        storage.write([Reading(T0 + i, f"c{c}", "voltage", Phase.L1, 230.0 + c) for c in range(5)])
        written += 5
        i += 1
        if time.monotonic() - last_flush >= 0.2:
            storage.flush()
            last_flush = time.monotonic()
            print(f"flushed {written}", flush=True)
        time.sleep(0.02)
    storage.close()
    report.write_text(json.dumps({"written": written, "health": storage.health().state.value}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
