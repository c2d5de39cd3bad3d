"""The job history: jobs that ended (done, dead, cancelled), archived from Redis into PostgreSQL.

The terminal scripts add one entry per ended job to its queue's history stream when history is
on (``Settings.history``, see ``keys.QueueKeys.history``); the archiver (``archiver.py``,
``jobrunner archiver``) reads the streams in a consumer group, writes batches to PostgreSQL
(``store.py``: COPY into a temporary table, then one INSERT ... ON CONFLICT (id)), and only
after the COMMIT acknowledges and deletes the entries. ``GET /history`` and ``Client.history``
query the table. This package needs psycopg (the ``history`` extra); the core never imports it.
See docs/history.md.
"""
