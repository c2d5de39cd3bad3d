-- delete: an operator removes dead jobs for good (their records and their place in dead).
-- KEYS[1] dead ZSET     KEYS[2] stats HASH
-- ARGV[1] job key prefix     ARGV[2..] the ids to delete
-- Returns: the number deleted. Only a job in dead is touched: a live job is never deleted, so a
-- click on a stale dashboard cannot lose work that is waiting or running.
local prefix = ARGV[1]
local n = 0
for i = 2, #ARGV do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    redis.call('DEL', prefix .. ARGV[i])
    n = n + 1
  end
end
if n > 0 then redis.call('HINCRBY', KEYS[2], 'deleted', n) end
return n
