-- ack: mark leased jobs done, each with its result; a completion whose token is not the current
-- lease is rejected.
-- KEYS[1] reserved ZSET     KEYS[2] stats HASH     KEYS[3] cancel SET     KEYS[4] history STREAM
-- ARGV[1] job key prefix     ARGV[2] result ttl ms (0 = delete the job hash at once)
-- ARGV[3] notify key prefix     ARGV[4] start marks of other leased jobs to write in the same
--   call, as start.lua's ARGV[2] ('' = none)     ARGV[5] history bound (0 = no history entry)
-- ARGV[6..] triples: id, token, result (JSON; '' = none)
-- Returns: {the ids whose completion was rejected as stale (their lease was taken over), the ids
--   of the start marks no longer held under their token (do not start them)}.
-- Idempotent: a retried ack of the same lease finds its job done under its token and is no-op.
-- Stats: processed, and the sums run_ms (start to done) and turnaround_ms (enqueued to done) of
-- the jobs acked, on Redis's clock: a reader divides their change by processed's for averages.
--#include _notify
--#include _history
--#include _start_marks
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
-- 'fu': the finish time in microseconds, for end-to-end latency finer than a millisecond.
local now_us = t[1] .. string.format('%06d', tonumber(t[2]))
local prefix, ttl, notify_prefix = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local bound = tonumber(ARGV[5])
local stale = {}
local done, run_ms, turnaround_ms = 0, 0, 0
for i = 6, #ARGV, 3 do
  local id, token, result = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local key = prefix .. id
  local f = redis.call('HMGET', key, 't', 's', 'w', 'c', 'eq', 'st')
  if f[1] == token and redis.call('ZREM', KEYS[1], id) == 1 then
    if bound > 0 then history(KEYS[4], bound, KEYS[2], key, id, 'done', now, nil, result) end
    if ttl > 0 then
      if result ~= '' then
        redis.call('HSET', key, 's', 'done', 'fi', now, 'fu', now_us, 'r', result)
      else
        redis.call('HSET', key, 's', 'done', 'fi', now, 'fu', now_us)
      end
      redis.call('PEXPIRE', key, ttl)
    else
      redis.call('DEL', key)
    end
    if f[3] then notify(notify_prefix .. id, ttl) end
    if f[4] then redis.call('SREM', KEYS[3], id) end  -- a cancel asked too late: it finished
    done = done + 1
    if f[5] then turnaround_ms = turnaround_ms + math.max(0, now - tonumber(f[5])) end
    if f[6] then run_ms = run_ms + now - tonumber(f[6]) end
  elseif f[1] == token and f[2] == 'done' then
    -- the same ack again (its reply was lost and the caller retried): already done, not stale
  else
    stale[#stale + 1] = id
  end
end
if done > 0 then
  redis.call('HINCRBY', KEYS[2], 'processed', done)
  redis.call('HINCRBY', KEYS[2], 'run_ms', run_ms)
  redis.call('HINCRBY', KEYS[2], 'turnaround_ms', turnaround_ms)
end
if #stale > 0 then redis.call('HINCRBY', KEYS[2], 'stale', #stale) end
return {stale, ARGV[4] ~= '' and start_marks(prefix, ARGV[4], now) or {}}
