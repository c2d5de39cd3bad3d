-- extend: renew the leases of jobs still running, to now + lease_ms.
-- KEYS[1] reserved ZSET
-- ARGV[1] job key prefix     ARGV[2] lease_ms     ARGV[3..] pairs: id, token
-- Returns: the ids whose lease is no longer the caller's (reaped and maybe redelivered).
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local prefix, lease = ARGV[1], tonumber(ARGV[2])
local lost = {}
for i = 3, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  if redis.call('HGET', prefix .. id, 't') == token and redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZADD', KEYS[1], 'XX', now + lease, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
