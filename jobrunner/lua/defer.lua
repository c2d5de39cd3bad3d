-- defer: a leased job may not run yet (over its rate or concurrency limit): schedule it at
-- now + delay_ms and refund the attempt its reservation charged. Neither a failure nor a retry.
-- KEYS[1] reserved ZSET     KEYS[2] scheduled ZSET     KEYS[3] stats HASH
-- ARGV[1] job key prefix     ARGV[2..] triples: id, token, delay_ms
-- Returns: the number of jobs deferred; a stale token is skipped (someone else holds the job).
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local prefix = ARGV[1]
local n = 0
for i = 2, #ARGV, 3 do
  local id, token = ARGV[i], ARGV[i + 1]
  local key = prefix .. id
  if redis.call('HGET', key, 't') == token and redis.call('ZREM', KEYS[1], id) == 1 then
    redis.call('HINCRBY', key, 'a', -1)
    redis.call('HSET', key, 's', 'scheduled')
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[i + 2]), id)
    n = n + 1
  end
end
if n > 0 then redis.call('HINCRBY', KEYS[3], 'deferred', n) end
return n
