-- schedule_fire: the leader enqueues a schedule's due slots, fenced by its lock token.
-- KEYS[1] leader HASH   KEYS[2] the schedule's HASH   KEYS[3] the queue's ready LIST
-- KEYS[4] the queue's stats HASH   KEYS[5] the SET of queue names
-- ARGV[1] the caller's fencing token   ARGV[2] job key prefix   ARGV[3] queue name
-- ARGV[4] mode: 'fire', or 'init' (only set the mark of a schedule that has none)
-- ARGV[5] the mark to reach (ms)   ARGV[6] slots skipped by the misfire policy
-- ARGV[7] next fire time (ms; '' = none)
-- ARGV[8..] groups of 5: slot ms, job id, encoded spec, max_retries, late ('1' = a catch-up)
-- Returns: {status, added, refused, mark}. status -1: fenced, the caller's token is not the
-- lock's (a paused or partitioned ex-leader): nothing is written. status 1: done.
-- One enqueue per slot: a slot at or before the schedule's mark (its latest handled slot,
-- kept forever) is refused, and so is a job id whose hash exists. Job hashes expire after
-- they finish; the mark does not, so a late duplicate is refused after completion too.
-- A new job's hash is written by new_job, as enqueue.lua writes it: workers see an ordinary job.
--#include _new_job
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then
  return {-1, 0, 0, ''}
end
local markRaw = redis.call('HGET', KEYS[2], 'mark')
if ARGV[4] == 'init' then
  if markRaw then return {1, 0, 0, markRaw} end
  redis.call('HSET', KEYS[2], 'mark', ARGV[5], 'updated', now)
  if ARGV[7] ~= '' then redis.call('HSET', KEYS[2], 'next_fire', ARGV[7]) end
  return {1, 0, 0, ARGV[5]}
end
local mark, markText = -1, ''
if markRaw then mark, markText = tonumber(markRaw), markRaw end
local added, refused, late = 0, 0, 0
local lastFire = nil
for i = 8, #ARGV, 5 do
  local slot = tonumber(ARGV[i])
  local id = ARGV[i + 1]
  local key = ARGV[2] .. id
  if slot <= mark or redis.call('EXISTS', key) == 1 then
    refused = refused + 1
  else
    new_job(key, ARGV[i + 2], ARGV[i + 3], now, 'ready')
    redis.call('LPUSH', KEYS[3], id)
    added = added + 1
    lastFire = ARGV[i]
    if ARGV[i + 4] == '1' then late = late + 1 end
  end
  if slot > mark then mark, markText = slot, ARGV[i] end
end
if tonumber(ARGV[5]) > mark then mark, markText = tonumber(ARGV[5]), ARGV[5] end
redis.call('HSET', KEYS[2], 'mark', markText, 'updated', now)
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[2], 'next_fire', ARGV[7])
else
  redis.call('HDEL', KEYS[2], 'next_fire')
end
if lastFire then redis.call('HSET', KEYS[2], 'last_fire', lastFire, 'fired_at', now) end
if added > 0 then
  redis.call('HINCRBY', KEYS[2], 'fired', added)
  redis.call('HINCRBY', KEYS[4], 'enqueued', added)
  redis.call('SADD', KEYS[5], ARGV[3])
end
if late > 0 then redis.call('HINCRBY', KEYS[2], 'late', late) end
if tonumber(ARGV[6]) > 0 then redis.call('HINCRBY', KEYS[2], 'skipped', ARGV[6]) end
return {1, added, refused, markText}
