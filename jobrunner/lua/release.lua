-- release: hand leased jobs back to the front of the ready list (graceful shutdown).
-- KEYS[1] reserved ZSET     KEYS[2] ready LIST     KEYS[3] stats HASH
-- ARGV[1] job key prefix     ARGV[2..] triples: id, token, refund ("1" = never started, so the
-- delivery does not count as an attempt)
-- Returns: the number of jobs released; a stale token is skipped (someone else holds the job).
local prefix = ARGV[1]
local n = 0
for i = 2, #ARGV, 3 do
  local id, token = ARGV[i], ARGV[i + 1]
  local key = prefix .. id
  if redis.call('HGET', key, 't') == token and redis.call('ZREM', KEYS[1], id) == 1 then
    if ARGV[i + 2] == '1' then redis.call('HINCRBY', key, 'a', -1) end
    redis.call('HSET', key, 's', 'ready')
    redis.call('RPUSH', KEYS[2], id)
    n = n + 1
  end
end
if n > 0 then redis.call('HINCRBY', KEYS[3], 'released', n) end
return n
