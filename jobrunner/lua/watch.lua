-- watch: a client is about to wait for a job's end (client.result): flag the job so that the
-- script that ends it pushes to its notify list. Returns the job's state now ('' = unknown):
-- the client waits only if the job has not ended already.
-- KEYS[1] the job HASH
local s = redis.call('HGET', KEYS[1], 's')
if not s then return '' end
if s ~= 'done' and s ~= 'dead' and s ~= 'cancelled' then redis.call('HSET', KEYS[1], 'w', 1) end
return s
