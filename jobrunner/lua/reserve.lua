-- reserve: take up to N ready jobs and lease each to the caller until now + lease_ms.
-- KEYS[1] ready LIST     KEYS[2] reserved ZSET     KEYS[3] fence STRING     KEYS[4] paused STRING
-- KEYS[5] cancel SET     KEYS[6] stats HASH     KEYS[7] claimed LIST (taken before ready)
-- ARGV[1] job key prefix     ARGV[2] max jobs     ARGV[3] lease_ms
-- ARGV[4] notify key prefix     ARGV[5] result ttl ms
-- ARGV[6] how many of the jobs reserved start at once (the worker has free slots for them):
--         those get their start mark here (`sg`, `st`, as start.lua writes it), saving the
--         worker a round trip before it runs them; the rest are marked by start.lua later
-- Returns: {now_ms, paused, id, token, attempts, spec, enqueued_ms, last_delay, id, ...}: six
-- fields a job; paused = 1 (and no job) while the queue is paused, else 0. Each reservation
-- takes a new fencing token; only the holder of the current token may complete. The attempt is
-- counted here and refunded unless the job starts (start.lua): a delivery is charged when a job
-- starts. An id whose job is no longer ready (cancelled, or its hash expired or was deleted by
-- hand) is dropped, not returned; one whose cancellation was asked for while a worker held it
-- (then deferred or handed back) ends cancelled here.
-- Idle workers wait for work with BLMOVE ready claimed RIGHT LEFT: it returns as soon as ready
-- holds a job and moves that one id (so one job wakes one worker), and no script has to spend a
-- command to wake them. The worker then calls reserve, which takes claimed ids first (oldest
-- first, as they were the oldest of ready); one whose worker died before its reserve is taken
-- by the next reserve of any worker.
--#include _notify
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
if redis.call('EXISTS', KEYS[4]) == 1 then return {now, 1} end
local out = {now, 0}
local prefix, n, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local start_now = tonumber(ARGV[6] or 0)
local claimed = true
for _ = 1, n do
  local id = claimed and redis.call('RPOP', KEYS[7])
  if not id then
    claimed = false
    id = redis.call('RPOP', KEYS[1])
    if not id then break end
  end
  local key = prefix .. id
  local g = redis.call('HMGET', key, 's', 'c', 'w', 'd', 'eq', 'ld')
  if g[1] == 'ready' and g[2] then
    redis.call('HSET', key, 's', 'cancelled', 'fi', now, 'e', 'cancelled before it started')
    if tonumber(ARGV[5]) > 0 then redis.call('PEXPIRE', key, ARGV[5]) end
    redis.call('SREM', KEYS[5], id)
    redis.call('HINCRBY', KEYS[6], 'cancelled', 1)
    if g[3] then notify(ARGV[4] .. id, ARGV[5]) end
  elseif g[1] == 'ready' then
    local token = redis.call('INCR', KEYS[3])
    local attempts = redis.call('HINCRBY', key, 'a', 1)
    if start_now > 0 then
      redis.call('HSET', key, 's', 'reserved', 't', token, 'sg', token, 'st', now)
      start_now = start_now - 1
    else
      redis.call('HSET', key, 's', 'reserved', 't', token)
    end
    redis.call('ZADD', KEYS[2], now + lease, id)
    out[#out + 1] = id
    out[#out + 1] = token
    out[#out + 1] = attempts
    out[#out + 1] = g[4]
    out[#out + 1] = g[5] or ''
    out[#out + 1] = g[6] or ''
  end
end
return out
