-- leader_release: give the scheduler lock up at shutdown, so a follower takes over at once.
-- KEYS[1] leader HASH   ARGV[1] the caller's id   ARGV[2] the caller's fencing token
-- Returns: 1 if the lock was the caller's and is now free, else 0 (someone else's: untouched).
if redis.call('HGET', KEYS[1], 'id') == ARGV[1] and redis.call('HGET', KEYS[1], 'token') == ARGV[2] then
  return redis.call('DEL', KEYS[1])
end
return 0
