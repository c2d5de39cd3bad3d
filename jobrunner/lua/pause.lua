-- pause: stop (or, with ARGV[1] = '0', resume) the reservation of a queue's jobs. Jobs in flight
-- finish; new ones may still be enqueued and wait. An idle worker sees a resumed queue at its
-- next look (it watches a paused queue every idle_poll_max seconds, not its ready list).
-- KEYS[1] paused STRING
-- ARGV[1] '1' pause, '0' resume
-- Returns: 1 if the state changed, 0 if it already was so.
if ARGV[1] == '1' then
  return redis.call('SET', KEYS[1], 1, 'NX') and 1 or 0
end
return redis.call('DEL', KEYS[1])
