-- ratelimit_gcra: the generic cell rate algorithm; one number per key, the theoretical arrival
-- time (TAT) of the next unit. A unit fits when now >= TAT - tau; then TAT = max(TAT, now) + T.
-- KEYS[1] TAT STRING (us)
-- ARGV[1] T, the emission interval in us   ARGV[2] tau = (burst - 1) * T   ARGV[3] N units
-- ARGV[4] now in microseconds, or '' for Redis TIME
-- Returns: {granted, retry_after_us, interval_us, remaining, now_us} (numbers after the first as
-- text). TAT is stored rounded up to a whole microsecond: rounding errs on the strict side.
local now
if ARGV[4] ~= '' then now = tonumber(ARGV[4]) else
  local t = redis.call('TIME'); now = t[1] * 1000000 + t[2] end
local T, tau, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
local granted = 0
while granted < n do
  if now < tat - tau then break end
  tat = math.max(tat, now) + T
  granted = granted + 1
end
tat = math.ceil(tat)
local retry = 0
if granted < n then retry = math.max(0, tat - tau - now) end
local remaining = math.max(0, math.floor((now + tau - math.max(tat, now)) / T) + 1)
if granted > 0 then
  redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
return {granted, string.format('%.17g', retry), string.format('%.17g', T),
        string.format('%.17g', remaining), string.format('%d', now)}
