-- leader_acquire: take the scheduler lock if it is free, or renew it if the caller holds it.
-- KEYS[1] leader HASH (id, token, since; expires with the lock)   KEYS[2] epoch STRING counter
-- ARGV[1] the caller's id   ARGV[2] lock ttl ms
-- Returns: {held (1 or 0), the holder's fencing token, the holder's id, Redis now ms,
--           ms left on the lock}.
-- Each new holder gets the next token from the epoch counter, which never expires, so tokens
-- only increase. The TTL runs on Redis's clock: a holder that stops renewing loses the lock.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ttl = tonumber(ARGV[2])
local holder = redis.call('HGET', KEYS[1], 'id')
if not holder then
  local token = redis.call('INCR', KEYS[2])
  redis.call('HSET', KEYS[1], 'id', ARGV[1], 'token', token, 'since', now)
  redis.call('PEXPIRE', KEYS[1], ttl)
  return {1, token, ARGV[1], now, ttl}
end
local token = tonumber(redis.call('HGET', KEYS[1], 'token'))
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ttl)
  return {1, token, holder, now, ttl}
end
return {0, token, holder, now, redis.call('PTTL', KEYS[1])}
