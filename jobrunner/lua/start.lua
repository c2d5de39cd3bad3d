-- start: jobs about to be handed to a handler are charged their attempt here, not at reserve:
-- each gets its start mark (`sg`, the lease token it started under) and its start time. A
-- lease that ran out is refunded by the reaper when the job has no mark under that lease, so a
-- job a worker held but never started (prefetched beside a job that killed the worker) loses
-- nothing. The worker writes the marks before it starts the jobs: a job that kills its worker
-- the moment it starts is still charged, and dead after max_retries + 1 starts.
-- KEYS[1] reserved ZSET
-- ARGV[1] job key prefix     ARGV[2] a JSON array of pairs, flat: [id, token, id, token, ...]
--         (tokens as strings): one argument, which the client packs far faster than 2 a job
-- Returns: the ids no longer held under that token (do not start them).
--#include _start_marks
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
return start_marks(ARGV[1], ARGV[2], now)
