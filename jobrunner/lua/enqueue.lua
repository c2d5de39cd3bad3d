-- enqueue: add a batch of jobs, all or nothing, over one or more queues.
-- KEYS: per queue, in order: ready LIST, scheduled ZSET, stats HASH, wake LIST (4 keys each);
--       then one idempotency STRING per job that carries a key (see ARGV below).
-- ARGV[1] number of queues Q     ARGV[2] bound on a queue's waiting jobs (0 = none)
-- ARGV[3] idempotency record ttl ms
-- ARGV[4 .. 3+Q] each queue's job key prefix
-- ARGV[4+Q ..] groups of 6 per job: queue index (1..Q), id, encoded spec, max_retries,
--   delay_ms (0 = ready now), idempotency KEYS index (0 = none; -1 = none, and the id was
--   made by the client just now, a new uuid, so its existence is not checked: one command less)
-- Returns: {1, r1, r2, ...} with one r per job: 1 = added; 0 = its id exists already (nothing
--   changed); a string = the id of the job its idempotency key already names (nothing added).
--   {-1, queue index, waiting} when a queue holds `bound` waiting jobs or more: nothing written.
-- All or nothing: the bound is checked before any write, and at maxmemory Redis refuses a
-- script at its first write, never later in the same script, so a refusal writes nothing.
-- An idempotency key names one job whatever the queue; its record outlives the job's hash.
--#include _new_job
local q = tonumber(ARGV[1])
local bound, idem_ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
if bound > 0 then
  for i = 1, q do
    local k = 4 * (i - 1)
    local waiting = redis.call('LLEN', KEYS[k + 1]) + redis.call('ZCARD', KEYS[k + 2])
    if waiting >= bound then return {-1, i, waiting} end
  end
end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local out = {1}
local added, ready = {}, {}
for i = 4 + q, #ARGV, 6 do
  local qi, id, delay, idem = tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
  local named = idem > 0 and redis.call('GET', KEYS[idem])
  local key = ARGV[3 + qi] .. id
  if named then
    out[#out + 1] = (named == id) and 0 or named
  elseif idem >= 0 and redis.call('EXISTS', key) == 1 then
    out[#out + 1] = 0
  else
    local k = 4 * (qi - 1)
    if delay > 0 then
      new_job(key, ARGV[i + 2], ARGV[i + 3], now, 'scheduled')
      redis.call('ZADD', KEYS[k + 2], now + delay, id)
    else
      new_job(key, ARGV[i + 2], ARGV[i + 3], now, 'ready')
      redis.call('LPUSH', KEYS[k + 1], id)
      ready[qi] = (ready[qi] or 0) + 1
    end
    added[qi] = (added[qi] or 0) + 1
    out[#out + 1] = 1
  end
  if idem > 0 and not named then redis.call('SET', KEYS[idem], id, 'PX', idem_ttl) end
end
for qi, n in pairs(added) do redis.call('HINCRBY', KEYS[4 * (qi - 1) + 3], 'enqueued', n) end
-- wake an idle worker: a marker in a list of at most one, which BLPOP-waiting workers take;
-- one already there (no worker took it: none is idle) needs nothing more
for qi, _ in pairs(ready) do
  local wake = KEYS[4 * (qi - 1) + 4]
  if redis.call('LLEN', wake) == 0 then redis.call('LPUSH', wake, 1) end
end
return out
