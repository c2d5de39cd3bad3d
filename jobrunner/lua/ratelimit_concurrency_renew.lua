-- ratelimit_concurrency_renew: extend the leases of slots still held (a running job's heartbeat).
-- KEYS[1] slots ZSET   KEYS[2] since HASH   ARGV[1] lease in us   ARGV[2] now in us, or '' for TIME   ARGV[3..] ids
-- Returns: the ids whose slot is no longer held (its lease expired and was taken back).
local now
if ARGV[2] ~= '' then now = tonumber(ARGV[2]) else
  local t = redis.call('TIME'); now = t[1] * 1000000 + t[2] end
local deadline = string.format('%d', now + tonumber(ARGV[1]))
local lost = {}
for i = 3, #ARGV do
  if not redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    lost[#lost + 1] = ARGV[i]
  else
    redis.call('ZADD', KEYS[1], 'XX', deadline, ARGV[i])
  end
end
local ttl = math.ceil(tonumber(ARGV[1]) / 1000) + 1000
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return lost
