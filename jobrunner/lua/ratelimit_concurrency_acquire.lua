-- ratelimit_concurrency_acquire: a distributed semaphore with leases. Expired leases are dropped
-- first, so the slots of a worker that died come back; an id that already holds a slot keeps it
-- (its lease is renewed). Ids are admitted in order until the slots run out.
-- KEYS[1] slots ZSET id -> lease deadline (us)   KEYS[2] since HASH id -> acquired (us)
-- KEYS[3] hold STRING: moving average of how long a slot is held (us)
-- ARGV[1] limit   ARGV[2] lease in us   ARGV[3] now in us, or '' for TIME
-- ARGV[4] hold estimate (us) when none was measured yet   ARGV[5..] ids
-- Returns: {granted, retry_after_us, interval_us, free_slots, now_us} (numbers as text after the
-- first). Retry after average hold / limit: when, with every slot busy, the next one is expected
-- to free.
local now
if ARGV[3] ~= '' then now = tonumber(ARGV[3]) else
  local t = redis.call('TIME'); now = t[1] * 1000000 + t[2] end
local limit, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
local deadline = string.format('%d', now + lease)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now))
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
local used = redis.call('ZCARD', KEYS[1])
local granted = 0
for i = 5, #ARGV do
  local id = ARGV[i]
  if redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZADD', KEYS[1], deadline, id)
  elseif used < limit then
    redis.call('ZADD', KEYS[1], deadline, id)
    redis.call('HSET', KEYS[2], id, string.format('%d', now))
    used = used + 1
  else
    break
  end
  granted = granted + 1
end
local ttl = math.ceil(lease / 1000) + 1000
if used > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
local hold = tonumber(redis.call('GET', KEYS[3]) or ARGV[4])
local retry = 0
if granted < #ARGV - 4 then retry = hold / limit end
return {granted, string.format('%.17g', retry), string.format('%.17g', hold / limit),
        string.format('%.17g', limit - used), string.format('%d', now)}
