-- reserve: take up to N ready jobs and lease each to the caller until now + lease_ms.
-- KEYS[1] ready LIST     KEYS[2] reserved ZSET     KEYS[3] fence STRING     KEYS[4] wake LIST
-- KEYS[5] paused STRING     KEYS[6] cancel SET     KEYS[7] stats HASH
-- ARGV[1] job key prefix     ARGV[2] max jobs     ARGV[3] lease_ms
-- ARGV[4] notify key prefix     ARGV[5] result ttl ms
-- ARGV[6] how many of the jobs reserved start at once (the worker has free slots for them):
--         those get their start mark here (`sg`, `st`, as start.lua writes it), saving the
--         worker a round trip before it runs them; the rest are marked by start.lua later
-- Returns: {now_ms, id, token, attempts, spec, enqueued_ms, last_delay, id, ...}: six fields a job.
-- Nothing while the queue is paused. Each reservation takes a new fencing token; only the
-- holder of the current token may complete. The attempt is counted here and refunded unless
-- the job starts (start.lua): a delivery is charged when a job starts. An id whose job is no
-- longer ready (cancelled, or its hash expired or was deleted by hand) is dropped, not returned;
-- one whose cancellation was asked for while a worker held it (then deferred or handed back)
-- ends cancelled here.
-- A caller that took a full batch and left jobs behind passes the wake-up on to the next idle
-- worker (one marker wakes one worker).
--#include _notify
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local out = {now}
if redis.call('EXISTS', KEYS[5]) == 1 then return out end
local prefix, n, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local start_now = tonumber(ARGV[6] or 0)
local emptied = false
for _ = 1, n do
  local id = redis.call('RPOP', KEYS[1])
  if not id then emptied = true; break end
  local key = prefix .. id
  local g = redis.call('HMGET', key, 's', 'c', 'w', 'd', 'eq', 'ld')
  if g[1] == 'ready' and g[2] then
    redis.call('HSET', key, 's', 'cancelled', 'fi', now, 'e', 'cancelled before it started')
    if tonumber(ARGV[5]) > 0 then redis.call('PEXPIRE', key, ARGV[5]) end
    redis.call('SREM', KEYS[6], id)
    redis.call('HINCRBY', KEYS[7], 'cancelled', 1)
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
if not emptied and redis.call('LLEN', KEYS[1]) > 0 then redis.call('LPUSH', KEYS[4], 1); redis.call('LTRIM', KEYS[4], 0, 0) end
return out
