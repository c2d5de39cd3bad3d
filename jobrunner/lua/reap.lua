-- reap: leases that ran out (the worker died or stalled). A job that never started under its
-- lease goes back to the front of the ready list with its attempt refunded (a delivery is
-- charged when a job starts, not when it is reserved). A job that started goes back too, or to
-- dead once it has started more than max_retries + 1 times (a job that keeps killing its
-- worker must not circulate forever). A job whose cancellation was asked for ends cancelled.
-- KEYS[1] reserved ZSET     KEYS[2] ready LIST     KEYS[3] dead ZSET     KEYS[4] stats HASH
-- KEYS[5] cancel SET     KEYS[6] history STREAM
-- ARGV[1] job key prefix     ARGV[2] max jobs to reap     ARGV[3] notify key prefix
-- ARGV[4] result ttl ms     ARGV[5] history bound (0 = no history entry)
-- Returns: {requeued, dead, cancel ids}: the ids asked to stop (workers holding one stop it).
--#include _notify
--#include _history
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local prefix, bound = ARGV[1], tonumber(ARGV[5])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local requeued, dead = 0, 0
for _, id in ipairs(ids) do
  local key = prefix .. id
  redis.call('ZREM', KEYS[1], id)
  local f = redis.call('HMGET', key, 'a', 'mr', 't', 'sg', 'c', 'w')
  if not f[1] then
    -- the job hash is gone: nothing to run
  elseif f[5] then
    redis.call('HSET', key, 's', 'cancelled', 'fi', now, 'e', 'cancelled (its worker died)')
    if bound > 0 then
      history(KEYS[6], bound, KEYS[4], key, id, 'cancelled', now, 'cancelled (its worker died)')
    end
    redis.call('SREM', KEYS[5], id)
    redis.call('HINCRBY', KEYS[4], 'cancelled', 1)
    if f[6] then notify(ARGV[3] .. id, ARGV[4]) end
  elseif f[4] ~= f[3] then
    redis.call('HINCRBY', key, 'a', -1)
    redis.call('HSET', key, 's', 'ready')
    redis.call('RPUSH', KEYS[2], id)
    requeued = requeued + 1
  elseif tonumber(f[1]) > tonumber(f[2]) then
    local why = 'lease expired on start ' .. f[1] .. ' (worker died or stalled); no retries left'
    redis.call('HSET', key, 's', 'dead', 'fi', now, 'e', why)
    if bound > 0 then history(KEYS[6], bound, KEYS[4], key, id, 'dead', now, why) end
    redis.call('ZADD', KEYS[3], now, id)
    dead = dead + 1
    if f[6] then notify(ARGV[3] .. id, ARGV[4]) end
  else
    redis.call('HSET', key, 's', 'ready', 'e', 'lease expired (worker died or stalled)')
    redis.call('RPUSH', KEYS[2], id)
    requeued = requeued + 1
  end
end
if requeued > 0 then
  redis.call('HINCRBY', KEYS[4], 'reaped', requeued)
end
if dead > 0 then redis.call('HINCRBY', KEYS[4], 'dead', dead) end
return {requeued, dead, redis.call('SMEMBERS', KEYS[5])}
