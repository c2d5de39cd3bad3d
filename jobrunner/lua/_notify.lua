-- notify: tell a client waiting on this job (client.result) that it has ended. Included by the
-- scripts that end a job (ack, fail, reap, cancel, cancelled); only a job whose hash has the
-- waiter flag `w` gets a push, so jobs nobody waits for cost nothing more.
-- The list expires with the job's record (at least a minute: the waiter may be slow to read).
local function notify(key, ttl_ms)
  redis.call('LPUSH', key, 1)
  redis.call('PEXPIRE', key, math.max(tonumber(ttl_ms), 60000))
end
