-- start: jobs about to be handed to a handler are charged their attempt here, not at reserve:
-- each gets its start mark (`sg`, the lease token it started under) and its start time. A
-- lease that ran out is refunded by the reaper when the job has no mark under that lease, so a
-- job a worker held but never started (prefetched beside a job that killed the worker) loses
-- nothing. The worker writes the marks before it starts the jobs: a job that kills its worker
-- the moment it starts is still charged, and dead after max_retries + 1 starts.
-- KEYS[1] reserved ZSET
-- ARGV[1] job key prefix     ARGV[2] a JSON array of pairs, flat: [id, token, id, token, ...]
--         (tokens as strings): one argument, which the client packs far faster than 2 a job
-- Returns: the ids no longer held under that token (do not start them).
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local prefix = ARGV[1]
local pairs_ = cjson.decode(ARGV[2])
local lost = {}
for i = 1, #pairs_, 2 do
  local id, token = pairs_[i], pairs_[i + 1]
  local key = prefix .. id
  local f = redis.call('HMGET', key, 't', 's')
  if f[1] == token and f[2] == 'reserved' then  -- still held under this lease
    redis.call('HSET', key, 'sg', token, 'st', now)
  else
    lost[#lost + 1] = id
  end
end
return lost
