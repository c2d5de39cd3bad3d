-- ratelimit_token_bucket: admit up to N units from a bucket of `burst` tokens refilled at `rate`.
-- KEYS[1] bucket HASH {tk = tokens, ts = last refill (us)}
-- ARGV[1] rate, tokens per microsecond   ARGV[2] burst   ARGV[3] N units asked for
-- ARGV[4] now in microseconds, or '' for Redis TIME (tests and simulations pass their own)
-- Returns: {granted, retry_after_us, interval_us, remaining_tokens, now_us}; numbers after the
-- first as text, because Redis truncates Lua numbers to integers.
local now
if ARGV[4] ~= '' then now = tonumber(ARGV[4]) else
  local t = redis.call('TIME'); now = t[1] * 1000000 + t[2] end
local rate, burst, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'tk', 'ts')
local tokens, last = burst, now
if h[1] then
  last = math.max(now, tonumber(h[2]))
  tokens = math.min(burst, tonumber(h[1]) + math.max(0, now - tonumber(h[2])) * rate)
end
local granted = math.min(n, math.floor(tokens))
tokens = tokens - granted
local retry = 0
if granted < n then retry = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tk', string.format('%.17g', tokens), 'ts', string.format('%d', last))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate / 1000) + 1000)
return {granted, string.format('%.17g', retry), string.format('%.17g', 1 / rate),
        string.format('%.17g', tokens), string.format('%d', now)}
