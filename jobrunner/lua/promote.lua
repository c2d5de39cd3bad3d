-- promote: move scheduled jobs whose due time has come to the ready list.
-- KEYS[1] scheduled ZSET     KEYS[2] ready LIST
-- ARGV[1] job key prefix     ARGV[2] max jobs to move
-- Returns: the number of jobs moved.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HSET', ARGV[1] .. id, 's', 'ready')
  redis.call('LPUSH', KEYS[2], id)
end
return #ids
