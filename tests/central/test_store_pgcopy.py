"""The binary COPY stream central builds with numpy (``central/pgcopy.py``): exact bytes, read back by
PostgreSQL, refusals; and the store's write of a message without points."""

from __future__ import annotations

import math

import psycopg
import pytest

from meterhub.central.payload import parse_circuit_message
from meterhub.central.pgcopy import POINT_ROW, point_rows
from meterhub.central.simulate import circuit_message
from meterhub.central.store import Batch, CentralStore

from .conftest import count

#: Binary COPY header (signature, flags 0, extension length 0) and trailer (field count −1):
#: https://www.postgresql.org/docs/15/sql-copy.html "Binary Format".
HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"


def test_one_row_is_the_bytes_the_copy_format_describes() -> None:
    row = (
        b"\x00\x05"  # 5 fields
        + b"\x00\x00\x00\x08"
        + (7).to_bytes(8, "big")  # series int8
        + b"\x00\x00\x00\x08"
        + (1_796_572_560).to_bytes(8, "big")  # ts int8
        + b"\x00\x00\x00\x08"
        + bytes.fromhex("409f400000000000")  # value float8 2000.0
        + b"\x00\x00\x00\x02"
        + b"\x00\x01"  # quality int2 1 (estimated)
        + b"\x00\x00\x00\x04"
        + (60).to_bytes(4, "big")  # samples int4
    )
    assert POINT_ROW.itemsize == len(row) == 52
    assert point_rows([7], [1_796_572_560], [2000.0], [1], [60]) == HEADER + row + TRAILER
    assert point_rows([], [], [], [], []) == HEADER + TRAILER


@pytest.mark.parametrize(
    ("columns", "words"),
    [
        (([1], [0], [math.nan], [0], [1]), "not finite"),
        (([1], [0], [math.inf], [0], [1]), "not finite"),
        (([1], [0], [1.0], [0], [2**31]), "samples is outside"),
        (([1], [0], [1.0], [2**15], [1]), "quality is outside"),
        (([2**64], [0], [1.0], [0], [1]), "outside 64 bits"),
        (([1, 2], [0], [1.0], [0], [1]), "different lengths"),
    ],
)
def test_values_the_columns_cannot_hold_are_refused(columns: tuple[list[float], ...], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        point_rows(*columns)


@pytest.mark.postgres
def test_postgresql_reads_the_stream_back_as_the_rows_given(dsn: str) -> None:
    rows = [
        (1, 1_796_572_560, 2000.0, 0, 60),
        (2**63 - 1, 0, -0.0, 2, 2**31 - 1),
        (3, 2**40, 5e-324, 1, 1),  # the smallest subnormal double
        (4, 7, -1.7976931348623157e308, 0, 1),
        (5, 8, 0.1, 2, 1),
    ]
    with psycopg.connect(dsn) as db:
        db.execute(
            "CREATE TABLE t (series BIGINT, ts BIGINT, value DOUBLE PRECISION, quality SMALLINT, samples INTEGER)"
        )
        with db.cursor() as cur, cur.copy("COPY t FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(point_rows(*(list(c) for c in zip(*rows, strict=True))))
        back = db.execute("SELECT * FROM t ORDER BY series").fetchall()
        assert back == sorted(rows)
        assert math.copysign(1.0, back[-1][2]) == -1.0  # series 2⁶³ − 1: −0.0 kept its sign


@pytest.mark.postgres
def test_a_message_without_values_is_stored_as_a_message_with_no_points(dsn: str) -> None:
    store = CentralStore(dsn)
    store.connect()
    try:
        empty = parse_circuit_message(circuit_message("s1", 1, 0, 0, 1_796_572_560, 10), "s1", "c0")
        full = parse_circuit_message(circuit_message("s1", 1, 1, 10, 1_796_572_560, 10), "s1", "c1")
        assert (len(empty.values), len(full.values)) == (0, 10)
        res = store.write(Batch(messages=[empty, full]))
        assert (res.messages, res.new_messages, res.points, res.new_points) == (2, 2, 10, 10)
        assert count(dsn, "SELECT count(*) FROM fleet_messages") == 2
        assert count(dsn, "SELECT count(*) FROM fleet_points") == 10
        # the same again (a redelivery) goes the idempotent way: nothing new
        res = store.write(Batch(messages=[empty, full]))
        assert (res.new_messages, res.new_points) == (0, 0)
        assert count(dsn, "SELECT count(*) FROM fleet_points") == 10
    finally:
        store.close()


@pytest.mark.postgres
def test_series_ids_by_shape_survive_a_rolled_back_batch(dsn: str) -> None:
    store = CentralStore(dsn)
    store.connect()
    try:
        m = parse_circuit_message(circuit_message("s2", 2, 0, 10, 1_796_572_560, 10), "s2", "c0")
        bad = Batch(messages=[m])
        bad.refused["s2"] = (1, "x\x00y")  # PostgreSQL text refuses NUL: the transaction rolls back
        with pytest.raises(Exception, match="NUL|0x00"):
            store.write(bad)
        assert count(dsn, "SELECT count(*) FROM fleet_series") == 0  # rolled back with it
        res = store.write(Batch(messages=[m]))  # the series are created again, not taken from a cache
        assert (res.new_messages, res.new_points) == (1, 10)
        assert count(dsn, "SELECT count(*) FROM fleet_points p JOIN fleet_series s ON s.id = p.series") == 10
    finally:
        store.close()
