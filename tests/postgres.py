"""A database of the test's own on the PostgreSQL server at 127.0.0.1:5432 (trust auth):
created empty, dropped after, so tests never share rows or schemas."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

SERVER = os.environ.get("JOBRUNNER_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(f"{SERVER}/postgres", autocommit=True, connect_timeout=5)


@contextmanager
def scratch_database() -> Iterator[str]:
    """The URL of a new database ``jr_test_<random>``; dropped (connections and all) after."""
    name = f"jr_test_{uuid.uuid4().hex[:12]}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield f"{SERVER}/{name}"
    finally:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def count(url: str, sql: str = "SELECT count(*) FROM job_history", *params: object) -> int:
    """The first column of the query's row; 0 while the table is not yet made (an archiver
    migrates the schema when it first connects)."""
    with psycopg.connect(url, connect_timeout=5) as conn:
        try:
            row = conn.execute(sql.encode(), params).fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
        return int(row[0]) if row else 0
