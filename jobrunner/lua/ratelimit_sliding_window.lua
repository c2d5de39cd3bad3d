-- ratelimit_sliding_window: the sliding-window counter. Counts per aligned window; the estimate
-- for the last `window` is prev * (share of the previous window still inside) + current.
-- It bounds each aligned window to `limit`, but a sliding window only approximately.
-- KEYS[1] HASH {w = index of the current window, c = its count, p = the previous one's count}
-- ARGV[1] window in us   ARGV[2] limit   ARGV[3] N units   ARGV[4] now in us, or '' for TIME
-- Returns: {granted, retry_after_us, interval_us, remaining, now_us} (numbers as text after the
-- first).
local now
if ARGV[4] ~= '' then now = tonumber(ARGV[4]) else
  local t = redis.call('TIME'); now = t[1] * 1000000 + t[2] end
local W, limit, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local idx = math.floor(now / W)
local h = redis.call('HMGET', KEYS[1], 'w', 'c', 'p')
local cur, prev = 0, 0
if h[1] then
  local w = tonumber(h[1])
  if w >= idx then idx, cur, prev = w, tonumber(h[2]), tonumber(h[3])
  elseif w == idx - 1 then prev = tonumber(h[2]) end
end
local elapsed = math.max(0, now - idx * W)
local weight = (W - elapsed) / W
local granted = 0
while granted < n and prev * weight + cur + 1 <= limit do
  cur = cur + 1
  granted = granted + 1
end
local retry = 0
if granted < n then
  local room = limit - cur - 1
  local at
  if room >= 0 then at = idx * W + W * (1 - room / prev)
  else at = (idx + 1) * W + W * (1 - (limit - 1) / cur) end
  retry = math.max(0, math.ceil(at - now))
end
redis.call('HSET', KEYS[1], 'w', string.format('%d', idx), 'c', cur, 'p', prev)
redis.call('PEXPIRE', KEYS[1], math.ceil(2 * W / 1000) + 1000)
return {granted, string.format('%.17g', retry), string.format('%.17g', W / limit),
        string.format('%.17g', math.max(0, limit - prev * weight - cur)), string.format('%d', now)}
