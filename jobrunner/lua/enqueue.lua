-- enqueue: add a batch of jobs, all or nothing, over one or more queues.
-- KEYS: per queue, in order: ready LIST, scheduled ZSET, stats HASH (3 keys each);
--       then one idempotency STRING per job that carries a key (see ARGV below).
-- ARGV[1] number of queues Q     ARGV[2] bound on a queue's waiting jobs (0 = none)
-- ARGV[3] idempotency record ttl ms     ARGV[4] the producer's clock (ms)
-- ARGV[5 .. 4+2Q] per queue: its job key prefix, then how many jobs to add to its `enqueued`
--   counter beyond this call's (-1: none now; the producer counts this call's jobs and carries
--   them to a later call, so a stream of single enqueues does not pay a HINCRBY each)
-- ARGV[5+2Q ..] groups of 6 per job: queue index (1..Q), id, encoded spec, max_retries,
--   delay_ms (0 = ready now), idempotency KEYS index (0 = none; -1 = none, and the id was
--   made by the client just now, a new uuid, so its existence is not checked: one command less)
-- Returns: {1, r1, r2, ...} with one r per job: 1 = added; 0 = its id exists already (nothing
--   changed); a string = the id of the job its idempotency key already names (nothing added).
--   {-1, queue index, waiting} when a queue holds `bound` waiting jobs or more: nothing written.
-- All or nothing: the bound is checked before any write, and at maxmemory Redis refuses a
-- script at its first write, never later in the same script, so a refusal writes nothing.
-- An idempotency key names one job whatever the queue; its record outlives the job's hash.
-- A job ready now is stamped (eq) with the producer's clock: no TIME call on the common path. A
-- delayed job's due time is on Redis's clock, as every lease and due time is, and so is its eq.
-- No worker needs waking: idle ones block on the ready list itself (see reserve.lua).
--#include _new_job
local q = tonumber(ARGV[1])
local bound, idem_ttl, now = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if bound > 0 then
  for i = 1, q do
    local k = 3 * (i - 1)
    local waiting = redis.call('LLEN', KEYS[k + 1]) + redis.call('ZCARD', KEYS[k + 2])
    if waiting >= bound then return {-1, i, waiting} end
  end
end
local redis_now = nil
local out = {1}
local added = {}
for i = 5 + 2 * q, #ARGV, 6 do
  local qi, id, delay, idem = tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
  local named = idem > 0 and redis.call('GET', KEYS[idem])
  local key = ARGV[3 + 2 * qi] .. id
  if named then
    out[#out + 1] = (named == id) and 0 or named
  elseif idem >= 0 and redis.call('EXISTS', key) == 1 then
    out[#out + 1] = 0
  else
    local k = 3 * (qi - 1)
    if delay > 0 then
      if not redis_now then
        local t = redis.call('TIME')
        redis_now = t[1] * 1000 + math.floor(t[2] / 1000)
      end
      new_job(key, ARGV[i + 2], ARGV[i + 3], redis_now, 'scheduled')
      redis.call('ZADD', KEYS[k + 2], redis_now + delay, id)
    else
      new_job(key, ARGV[i + 2], ARGV[i + 3], now, 'ready')
      redis.call('LPUSH', KEYS[k + 1], id)
    end
    added[qi] = (added[qi] or 0) + 1
    out[#out + 1] = 1
  end
  if idem > 0 and not named then redis.call('SET', KEYS[idem], id, 'PX', idem_ttl) end
end
for qi = 1, q do
  local carried = tonumber(ARGV[4 + 2 * qi])
  local n = carried >= 0 and carried + (added[qi] or 0) or 0
  if n > 0 then redis.call('HINCRBY', KEYS[3 * (qi - 1) + 3], 'enqueued', n) end
end
return out
