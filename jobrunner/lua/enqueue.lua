-- enqueue: add jobs that do not exist yet, ready now or scheduled for later.
-- KEYS[1] ready LIST     KEYS[2] scheduled ZSET     KEYS[3] stats HASH     KEYS[4] wake LIST
-- ARGV[1] job key prefix
-- ARGV[2..] groups of 4: id, encoded spec, max_retries, delay_ms (0 = ready now)
-- Returns: a list with one flag per job, 1 = added, 0 = an id that already exists (not changed).
-- A job hash that exists is left alone, which makes deterministic ids idempotent.
--#include _new_job
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local prefix = ARGV[1]
local flags = {}
local added, ready = 0, 0
for i = 2, #ARGV, 4 do
  local id, delay = ARGV[i], tonumber(ARGV[i + 3])
  local key = prefix .. id
  if redis.call('EXISTS', key) == 1 then
    flags[#flags + 1] = 0
  else
    if delay > 0 then
      new_job(key, ARGV[i + 1], ARGV[i + 2], now, 'scheduled')
      redis.call('ZADD', KEYS[2], now + delay, id)
    else
      new_job(key, ARGV[i + 1], ARGV[i + 2], now, 'ready')
      redis.call('LPUSH', KEYS[1], id)
      ready = ready + 1
    end
    added = added + 1
    flags[#flags + 1] = 1
  end
end
if added > 0 then redis.call('HINCRBY', KEYS[3], 'enqueued', added) end
-- wake an idle worker: a marker in a list of at most one, which BLPOP-waiting workers take
if ready > 0 then redis.call('LPUSH', KEYS[4], 1); redis.call('LTRIM', KEYS[4], 0, 0) end
return flags
