-- requeue: an operator sends dead jobs back to ready with a fresh set of attempts.
-- KEYS[1] dead ZSET     KEYS[2] ready LIST     KEYS[3] stats HASH
-- ARGV[1] job key prefix     ARGV[2] "ids" or "oldest"
-- ARGV[3..] with "ids": the ids to requeue; with "oldest": ARGV[3] = how many, oldest first
-- Returns: the number of jobs requeued (ids not in dead are skipped). The last error is kept.
local prefix = ARGV[1]
local ids
if ARGV[2] == 'oldest' then
  ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
else
  ids = {}
  for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
end
local n = 0
for _, id in ipairs(ids) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    redis.call('HSET', prefix .. id, 's', 'ready', 'a', 0)
    redis.call('HDEL', prefix .. id, 'ld')
    redis.call('LPUSH', KEYS[2], id)
    n = n + 1
  end
end
if n > 0 then redis.call('HINCRBY', KEYS[3], 'requeued', n) end
return n
