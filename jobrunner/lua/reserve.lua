-- reserve: take up to N ready jobs and lease each to the caller until now + lease_ms.
-- KEYS[1] ready LIST     KEYS[2] reserved ZSET     KEYS[3] fence STRING     KEYS[4] wake LIST
-- ARGV[1] job key prefix     ARGV[2] max jobs     ARGV[3] lease_ms
-- Returns: {now_ms, id, token, attempts, spec, enqueued_ms, last_delay, id, ...}: six fields a job.
-- Each reservation takes a new fencing token; only the holder of the current token may complete.
-- An id whose job hash is gone (expired or deleted by hand) is dropped and not returned.
-- A caller that took a full batch and left jobs behind passes the wake-up on to the next idle
-- worker (one marker wakes one worker).
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local prefix, n, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {now}
local emptied = false
for _ = 1, n do
  local id = redis.call('RPOP', KEYS[1])
  if not id then emptied = true; break end
  local key = prefix .. id
  if redis.call('EXISTS', key) == 1 then
    local token = redis.call('INCR', KEYS[3])
    local attempts = redis.call('HINCRBY', key, 'a', 1)
    redis.call('HSET', key, 's', 'reserved', 't', token, 'st', now)
    redis.call('ZADD', KEYS[2], now + lease, id)
    local f = redis.call('HMGET', key, 'd', 'eq', 'ld')
    out[#out + 1] = id
    out[#out + 1] = token
    out[#out + 1] = attempts
    out[#out + 1] = f[1]
    out[#out + 1] = f[2] or ''
    out[#out + 1] = f[3] or ''
  end
end
if not emptied and redis.call('LLEN', KEYS[1]) > 0 then redis.call('LPUSH', KEYS[4], 1); redis.call('LTRIM', KEYS[4], 0, 0) end
return out
