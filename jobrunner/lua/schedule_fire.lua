-- schedule_fire: the leader enqueues a schedule's due slots, fenced by its lock token.
-- KEYS[1] the queue's scheduler fence STRING: the token of the newest leader that announced
--   itself to this queue   KEYS[2] the schedule's state HASH (mark, next/last fire, counters)
-- KEYS[3] the queue's ready LIST   KEYS[4] the queue's stats HASH
-- All four carry the queue's hash tag: one slot, so on Redis Cluster the script runs where the
-- queue lives. The lock lives in a slot of its own, so the fence is its copy per queue: a new
-- leader announces its token ('lead') to the queues of its schedules before it fires there.
-- ARGV[1] the caller's fencing token   ARGV[2] job key prefix
-- ARGV[3] mode: 'lead' (raise the fence to this token), 'init' (only set the mark of a
--   schedule that has none), or 'fire'
-- ARGV[4] the mark to reach (ms)   ARGV[5] slots skipped by the misfire policy
-- ARGV[6] next fire time (ms; '' = none)
-- ARGV[7..] groups of 5: slot ms, job id, encoded spec, max_retries, late ('1' = a catch-up)
-- Returns: {status, added, refused, mark}. status -1: fenced, nothing written: 'lead' with a
-- token below the fence's, or 'init'/'fire' with a token not the fence's (a paused or
-- partitioned ex-leader once a newer one announced itself). status 1: done.
-- One enqueue per slot: a slot at or before the schedule's mark (its latest handled slot,
-- kept forever) is refused, and so is a job id whose hash exists. Job hashes expire after
-- they finish; the mark does not, so a late duplicate is refused after completion too; and
-- an ex-leader that fires before its successor announced itself can only fire a slot once.
-- A new job's hash is written by new_job, as enqueue.lua writes it: workers see an ordinary job.
--#include _new_job
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local token, fence = tonumber(ARGV[1]), tonumber(redis.call('GET', KEYS[1]) or '0')
if ARGV[3] == 'lead' then
  if token < fence then return {-1, 0, 0, ''} end
  redis.call('SET', KEYS[1], ARGV[1])
  return {1, 0, 0, redis.call('HGET', KEYS[2], 'mark') or ''}
end
if token ~= fence then
  return {-1, 0, 0, ''}
end
local markRaw = redis.call('HGET', KEYS[2], 'mark')
if ARGV[3] == 'init' then
  if markRaw then return {1, 0, 0, markRaw} end
  redis.call('HSET', KEYS[2], 'mark', ARGV[4], 'updated', now)
  if ARGV[6] ~= '' then redis.call('HSET', KEYS[2], 'next_fire', ARGV[6]) end
  return {1, 0, 0, ARGV[4]}
end
local mark, markText = -1, ''
if markRaw then mark, markText = tonumber(markRaw), markRaw end
local added, refused, late = 0, 0, 0
local lastFire = nil
for i = 7, #ARGV, 5 do
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
if tonumber(ARGV[4]) > mark then mark, markText = tonumber(ARGV[4]), ARGV[4] end
redis.call('HSET', KEYS[2], 'mark', markText, 'updated', now)
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[2], 'next_fire', ARGV[6])
else
  redis.call('HDEL', KEYS[2], 'next_fire')
end
if lastFire then redis.call('HSET', KEYS[2], 'last_fire', lastFire, 'fired_at', now) end
if added > 0 then
  redis.call('HINCRBY', KEYS[2], 'fired', added)
  redis.call('HINCRBY', KEYS[4], 'enqueued', added)
end
if late > 0 then redis.call('HINCRBY', KEYS[2], 'late', late) end
if tonumber(ARGV[5]) > 0 then redis.call('HINCRBY', KEYS[2], 'skipped', ARGV[5]) end
return {1, added, refused, markText}
