"""The durable outbox: oldest first, ids never reused, bounded by bytes and age, and what put() returned
for survives a kill -9."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from meterhub.storage import outbox as outbox_module
from meterhub.storage.outbox import ROW_OVERHEAD, Message, Outbox, OutboxError


def test_messages_come_back_oldest_first_and_ids_are_never_reused(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", name="t")
    ids = box.put([Message(f"t/{i}", f"p{i}".encode()) for i in range(5)])
    assert ids == [1, 2, 3, 4, 5]
    assert [m.topic for m in box.peek(after=0, limit=3)] == ["t/0", "t/1", "t/2"]
    assert [m.id for m in box.peek(after=3)] == [4, 5]
    assert box.ack([1, 2, 5]) == 3
    assert box.ack([1]) == 0  # already gone
    assert [m.id for m in box.peek()] == [3, 4]
    assert box.put([Message("t/x", b"x")]) == [6]  # not 5 again, although 5 was deleted
    box.close()
    reopened = Outbox(tmp_path / "o.sqlite", name="t")
    st = reopened.stats()
    assert (st.backlog, st.size) == (3, (3 + 2) + (3 + 2) + (3 + 1) + 3 * ROW_OVERHEAD)
    assert reopened.put([Message("t/y", b"y")]) == [7]
    reopened.close()


def test_a_full_outbox_drops_the_oldest_counts_them_and_warns_naming_the_instance(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    row = 4 + 96 + ROW_OVERHEAD  # topic "t/00" + 96-byte payload
    box = Outbox(tmp_path / "o.sqlite", name="publish cloud", max_bytes=10 * row)
    box.put([Message(f"t/{i:02d}", bytes(96)) for i in range(10)])
    assert box.dropped == 0 and box.stats().backlog == 10
    with caplog.at_level(logging.WARNING, logger="meterhub.outbox"):
        box.put([Message(f"t/{i:02d}", bytes(96)) for i in range(10, 13)])
    assert box.dropped == 3
    assert [m.topic for m in box.peek(limit=2)] == ["t/03", "t/04"]
    assert box.stats().size == 10 * row
    assert "publish cloud: outbox full" in caplog.text and "dropped the 3 oldest" in caplog.text
    box.close()
    assert Outbox(tmp_path / "o.sqlite", name="publish cloud").dropped == 3  # the count survives a restart


def test_messages_older_than_max_age_are_dropped(tmp_path: Path) -> None:
    now = [1_000_000.0]
    box = Outbox(tmp_path / "o.sqlite", name="t", max_age=3600, clock=lambda: now[0])
    box.put([Message("old", b"1")])
    now[0] += 1800
    box.put([Message("mid", b"2")])
    now[0] += 2000  # 'old' is 3800 s old now
    box.put([Message("new", b"3")])
    assert [m.topic for m in box.peek()] == ["mid", "new"] and box.dropped == 1
    assert box.stats().oldest == 1_001_800.0
    box.close()


_WRITER = """
import sys
import threading
from pathlib import Path
from meterhub.storage.outbox import Message, Outbox
box = Outbox(Path(sys.argv[1]), name="k")
i = 0
while True:
    ids = box.put([Message("t", str(i).encode())])
    print(ids[0], flush=True)
    i += 1
"""


def test_what_put_returned_for_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, env=env, text=True
    )
    assert proc.stdout is not None
    confirmed: list[int] = []
    deadline = time.monotonic() + 20
    while len(confirmed) < 200 and time.monotonic() < deadline:
        confirmed.append(int(proc.stdout.readline()))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    confirmed += [int(x) for x in proc.stdout.read().split()]
    assert len(confirmed) >= 200
    box = Outbox(path, name="k")
    stored = [m.id for m in box.peek(limit=100_000)]
    assert stored[: len(confirmed)] == confirmed  # every confirmed message is there, in order
    assert stored == list(range(1, len(stored) + 1))
    box.close()


def test_large_payloads_are_stored_compressed_and_come_back_byte_for_byte(tmp_path: Path) -> None:
    payload = b'{"quantity":"active_power","value":1234.5}' * 100  # 4 300 bytes of repetitive JSON
    box = Outbox(tmp_path / "o.sqlite", name="t")
    box.put([Message("t", payload), Message("small", b"x" * 255)])
    assert [m.payload for m in box.peek()] == [payload, b"x" * 255]
    stored = box.stats().size - 2 * ROW_OVERHEAD - len("t") - len("small") - 255
    assert 0 < stored < len(payload) / 10
    box.close()


def test_acknowledging_a_run_of_consecutive_ids_deletes_exactly_those(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", name="t")
    box.put([Message(f"t/{i}", b"abcd") for i in range(10)])  # ids 1…10, 3 + 4 + 32 B each
    assert box.ack(range(3, 7)) == 4  # 3, 4, 5, 6: one range
    assert [m.id for m in box.peek()] == [1, 2, 7, 8, 9, 10]
    assert box.stats().size == 6 * (3 + 4 + ROW_OVERHEAD)
    assert box.ack([5, 6, 7, 8]) == 2  # consecutive, but 5 and 6 are gone already: only 7 and 8 count
    assert box.ack([1, 10]) == 2  # not consecutive: 2 and 9 stay
    assert [m.id for m in box.peek()] == [2, 9]
    assert box.stats().size == 2 * (3 + 4 + ROW_OVERHEAD) and box.holds(9) and not box.holds(10)
    box.close()


def test_messages_read_from_memory_are_those_in_the_file(tmp_path: Path) -> None:
    """What ``put`` keeps in memory for the drainer (no query, no decompression) equals what a fresh
    process reads from the file: same ids, topics, payloads, flags and times, holes and drops included."""
    box = Outbox(tmp_path / "o.sqlite", name="t", max_bytes=20 * 350)  # random payloads: stored ~311 B
    box.put([Message(f"t/{i:02d}", os.urandom(300), qos=i % 2, retain=i == 3) for i in range(12)])
    box.ack([2, 3, 7])
    box.put([Message(f"t/{i:02d}", os.urandom(300)) for i in range(12, 20)])  # 17 rows: within the bound
    assert box.dropped == 0
    box.put([Message(f"t/{i:02d}", os.urandom(300)) for i in range(20, 24)])  # 21 rows: the oldest go
    assert box.dropped > 0
    in_memory = [box.peek(after, limit=3) for after in (0, 5, 9, 30)]
    box.close()
    fresh = Outbox(tmp_path / "o.sqlite", name="t")
    assert in_memory == [fresh.peek(after, limit=3) for after in (0, 5, 9, 30)]
    fresh.close()


def test_staged_messages_count_at_once_and_are_committed_together_in_order(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", name="t")
    for k in range(100):  # 100 intervals of 5 messages, handed over as the publish sink does
        box.stage([Message(f"t/{k}/{i}", b"x") for i in range(5)])
    assert box.stats().backlog == 500  # counted at once, committed or not
    assert box.sync(timeout=30)
    assert box.commits < 50  # group commit: the writer took what waited in each round, not 100 rounds
    got = box.peek(limit=1000)
    assert [m.id for m in got] == list(range(1, 501))
    assert [m.topic for m in got] == [f"t/{k}/{i}" for k in range(100) for i in range(5)]
    assert box.put([Message("after", b"y")]) == [501]  # put() queues behind what was staged
    box.close()


def test_a_staged_message_is_read_only_once_its_row_is_committed(tmp_path: Path) -> None:
    """The link may send only what is durable: every message peek() hands out is already visible to
    another connection, which sees committed rows only."""
    path = tmp_path / "o.sqlite"
    box = Outbox(path, name="t")
    other = sqlite3.connect(path)

    def produce() -> None:
        for k in range(40):
            box.stage([Message(f"t/{k}", os.urandom(300)) for _ in range(50)])

    producer = threading.Thread(target=produce)
    producer.start()
    seen: list[int] = []
    deadline = time.monotonic() + 30
    while len(seen) < 2000 and time.monotonic() < deadline:
        for m in box.peek(after=seen[-1] if seen else 0, limit=500):
            assert other.execute("SELECT 1 FROM outbox WHERE id = ?", (m.id,)).fetchone() is not None
            seen.append(m.id)
    producer.join()
    assert seen == list(range(1, 2001))
    other.close()
    box.close()


def test_close_commits_what_is_staged(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", name="t")
    box.stage([Message(f"t/{i}", b"p") for i in range(300)])
    box.close()
    reopened = Outbox(tmp_path / "o.sqlite", name="t")
    assert [m.topic for m in reopened.peek(limit=1000)] == [f"t/{i}" for i in range(300)]
    reopened.close()


def test_a_failed_write_keeps_staged_messages_in_memory_and_retries_them(tmp_path: Path) -> None:
    """Another process holds the file's write lock longer than SQLite waits (5 s): the writer fails,
    says why, keeps the staged messages and commits them once the lock is gone; a put() gets the error."""
    path = tmp_path / "o.sqlite"
    box = Outbox(path, name="publish cloud")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    box.stage([Message("a", b"1"), Message("b", b"2")])
    with pytest.raises(OutboxError, match="cannot write 3 message"):  # this round holds a, b and c
        box.put([Message("c", b"3")])
    assert box.failed is not None and "database is locked" in box.failed
    assert box.stats().backlog == 2  # a and b wait in memory
    blocker.execute("ROLLBACK")
    blocker.close()
    assert box.sync(timeout=15) and box.failed is None
    assert [m.topic for m in box.peek()] == ["a", "b"]
    box.close()


def test_staged_messages_held_through_a_failing_write_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While writes keep failing, stage() holds messages only up to STAGED_CAP, then refuses more with a
    message naming the file and the reason; what it holds is committed once writing works again."""
    monkeypatch.setattr(outbox_module, "STAGED_CAP", 1000)
    path = tmp_path / "o.sqlite"
    box = Outbox(path, name="publish cloud")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    box.stage([Message("a", b"x" * 600)])
    with pytest.raises(OutboxError, match="cannot write"):  # this round fails: the lock is held
        box.put([Message("b", b"y")])
    box.stage([Message("c", b"x" * 600)])  # held: 600 B + overhead so far, under the cap
    with pytest.raises(OutboxError, match=r"o\.sqlite: writing fails .*2 message\(s\) already wait"):
        box.stage([Message("d", b"z")])
    blocker.execute("ROLLBACK")
    blocker.close()
    assert box.sync(timeout=15) and box.failed is None
    assert [m.topic for m in box.peek()] == ["a", "c"]
    box.close()
