-- fail: a leased job's attempt failed; schedule a retry after delay_ms, or dead-letter it when
-- its attempts are used up (attempts > max_retries) or the caller says retrying cannot help.
-- KEYS[1] reserved ZSET     KEYS[2] scheduled ZSET     KEYS[3] dead ZSET     KEYS[4] stats HASH
-- KEYS[5] cancel SET     KEYS[6] history STREAM
-- ARGV[1] job key prefix  ARGV[2] id  ARGV[3] token  ARGV[4] error text  ARGV[5] delay_ms
-- ARGV[6] delay in seconds as text (kept for decorrelated jitter)  ARGV[7] "1" = dead now
-- ARGV[8] notify key prefix  ARGV[9] result ttl ms (how long a cancelled job's record is kept)
-- ARGV[10] history bound (0 = no history entry for a job that ends here)
-- Returns: "scheduled", "dead", or "stale" (the token is not the current lease; nothing changed).
-- A job whose cancellation was asked for while it ran is not retried: it ends cancelled.
--#include _notify
--#include _history
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local key = ARGV[1] .. ARGV[2]
local id = ARGV[2]
local bound = tonumber(ARGV[10])
if redis.call('HGET', key, 't') ~= ARGV[3] or redis.call('ZREM', KEYS[1], id) == 0 then
  redis.call('HINCRBY', KEYS[4], 'stale', 1)
  return 'stale'
end
local f = redis.call('HMGET', key, 'a', 'mr', 'w', 'c')
if f[4] then
  redis.call('HSET', key, 's', 'cancelled', 'e', ARGV[4], 'fi', now)
  if bound > 0 then history(KEYS[6], bound, KEYS[4], key, id, 'cancelled', now, ARGV[4]) end
  if tonumber(ARGV[9]) > 0 then redis.call('PEXPIRE', key, ARGV[9]) else redis.call('DEL', key) end
  redis.call('SREM', KEYS[5], id)
  redis.call('HINCRBY', KEYS[4], 'cancelled', 1)
  if f[3] then notify(ARGV[8] .. id, ARGV[9]) end
  return 'cancelled'
end
if ARGV[7] == '1' or tonumber(f[1]) > tonumber(f[2]) then
  redis.call('HSET', key, 's', 'dead', 'e', ARGV[4], 'fi', now)
  if bound > 0 then history(KEYS[6], bound, KEYS[4], key, id, 'dead', now, ARGV[4]) end
  redis.call('ZADD', KEYS[3], now, id)
  redis.call('HINCRBY', KEYS[4], 'dead', 1)
  redis.call('HINCRBY', KEYS[4], 'failed', 1)
  if f[3] then notify(ARGV[8] .. id, ARGV[9]) end
  return 'dead'
end
redis.call('HSET', key, 's', 'scheduled', 'e', ARGV[4], 'ld', ARGV[6])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), id)
redis.call('HINCRBY', KEYS[4], 'retried', 1)
redis.call('HINCRBY', KEYS[4], 'failed', 1)
return 'scheduled'
