-- cancel: a job that has not started never will; a running one is flagged for its worker.
-- KEYS[1] the job HASH     KEYS[2] scheduled ZSET     KEYS[3] stats HASH     KEYS[4] cancel SET
-- KEYS[5] the job's notify LIST     KEYS[6] history STREAM
-- ARGV[1] id     ARGV[2] result ttl ms (how long the cancelled job's record is kept)
-- ARGV[3] history bound (0 = no history entry; absent: 0)
-- Returns: 'cancelled' (it will not run), 'cancelling' (it is running: its worker stops it, and
-- it ends cancelled), its final state if it had ended ('done', 'dead', 'cancelled'), or ''
-- for an unknown job. A cancelled job is final: it is never retried or requeued.
--#include _notify
--#include _history
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local f = redis.call('HMGET', KEYS[1], 's', 'w')
local state = f[1]
if not state then return '' end
if state == 'ready' or state == 'scheduled' then
  -- a ready id stays in its list: reserve drops ids whose job is no longer ready
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HSET', KEYS[1], 's', 'cancelled', 'fi', now, 'e', 'cancelled before it started')
  local bound = tonumber(ARGV[3] or '0')
  if bound > 0 then
    history(KEYS[6], bound, KEYS[3], KEYS[1], ARGV[1], 'cancelled', now,
      'cancelled before it started')
  end
  if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
  redis.call('HINCRBY', KEYS[3], 'cancelled', 1)
  if f[2] then notify(KEYS[5], ARGV[2]) end
  return 'cancelled'
end
if state == 'reserved' then
  redis.call('HSET', KEYS[1], 'c', 1)
  redis.call('SADD', KEYS[4], ARGV[1])
  return 'cancelling'
end
return state
