"""Row counts on a test's own PostgreSQL database (``pg_url`` in conftest.py, made by
``jobrunner.lab.history.scratch_database`` on 127.0.0.1:5432 and dropped after)."""

from __future__ import annotations

import psycopg


def count(url: str, sql: str = "SELECT count(*) FROM job_history", *params: object) -> int:
    """The first column of the query's row; 0 while the table is not yet made (an archiver
    migrates the schema when it first connects)."""
    with psycopg.connect(url, connect_timeout=5) as conn:
        try:
            row = conn.execute(sql.encode(), params).fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
        return int(row[0]) if row else 0
