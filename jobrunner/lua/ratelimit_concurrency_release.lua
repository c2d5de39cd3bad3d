-- ratelimit_concurrency_release: give slots back and fold their hold times into the average.
-- KEYS[1] slots ZSET   KEYS[2] since HASH   KEYS[3] hold STRING (us, moving average)
-- ARGV[1] now in us, or '' for TIME   ARGV[2] weight of a new hold time (0..1)   ARGV[3..] ids
-- Returns: the number of slots released (an id whose lease already expired holds none).
local now
if ARGV[1] ~= '' then now = tonumber(ARGV[1]) else
  local t = redis.call('TIME'); now = t[1] * 1000000 + t[2] end
local alpha = tonumber(ARGV[2])
local avg = tonumber(redis.call('GET', KEYS[3]) or '')
local n = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local since = redis.call('HGET', KEYS[2], id)
  if redis.call('ZREM', KEYS[1], id) == 1 then
    n = n + 1
    if since then
      local held = math.max(0, now - tonumber(since))
      if avg then avg = alpha * held + (1 - alpha) * avg else avg = held end
    end
  end
  redis.call('HDEL', KEYS[2], id)
end
if avg then redis.call('SET', KEYS[3], string.format('%.17g', avg), 'EX', 3600) end
return n
