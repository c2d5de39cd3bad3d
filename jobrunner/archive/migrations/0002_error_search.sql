-- 0002: full-text search on the error text (GET /history?error=...), 'simple' configuration:
-- no stemming and no stop words, since error texts are identifiers, paths and numbers as much
-- as English. Rows without an error (most of them) index nothing.
ALTER TABLE job_history
    ADD COLUMN error_search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', coalesce(error, ''))) STORED;
CREATE INDEX job_history_error_search ON job_history USING gin (error_search);
