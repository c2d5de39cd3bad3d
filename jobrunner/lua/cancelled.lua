-- cancelled: a worker stopped a job whose cancellation was asked for (or never started it).
-- KEYS[1] reserved ZSET     KEYS[2] stats HASH     KEYS[3] cancel SET     KEYS[4] history STREAM
-- ARGV[1] job key prefix     ARGV[2] result ttl ms     ARGV[3] notify key prefix
-- ARGV[4] history bound (0 = no history entry)     ARGV[5..] triples: id, token, what happened (kept as the job's last error)
-- Returns: the number of jobs that ended cancelled (a stale token is skipped).
--#include _notify
--#include _history
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local prefix, ttl, bound = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4])
local n = 0
for i = 5, #ARGV, 3 do
  local id, token = ARGV[i], ARGV[i + 1]
  local key = prefix .. id
  local f = redis.call('HMGET', key, 't', 'w')
  if f[1] == token and redis.call('ZREM', KEYS[1], id) == 1 then
    redis.call('HSET', key, 's', 'cancelled', 'fi', now, 'e', ARGV[i + 2])
    if bound > 0 then history(KEYS[4], bound, KEYS[2], key, id, 'cancelled', now, ARGV[i + 2]) end
    if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
    redis.call('SREM', KEYS[3], id)
    if f[2] then notify(ARGV[3] .. id, ttl) end
    n = n + 1
  end
end
if n > 0 then redis.call('HINCRBY', KEYS[2], 'cancelled', n) end
return n
