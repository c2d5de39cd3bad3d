-- pause: stop (or, with ARGV[1] = '0', resume) the reservation of a queue's jobs. Jobs in flight
-- finish; new ones may still be enqueued and wait. Resuming wakes an idle worker.
-- KEYS[1] paused STRING     KEYS[2] wake LIST
-- ARGV[1] '1' pause, '0' resume
-- Returns: 1 if the state changed, 0 if it already was so.
if ARGV[1] == '1' then
  return redis.call('SET', KEYS[1], 1, 'NX') and 1 or 0
end
local n = redis.call('DEL', KEYS[1])
if n == 1 then redis.call('LPUSH', KEYS[2], 1); redis.call('LTRIM', KEYS[2], 0, 0) end
return n
