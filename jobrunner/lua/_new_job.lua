-- new_job: the one definition of a new job's hash, included by enqueue.lua and
-- schedule_fire.lua (scripts.py pastes this file where a script says `--#include _new_job`).
-- Fields: d the encoded spec, mr max retries, a attempts (0), eq enqueued at (ms, Redis clock),
-- s the state ('ready' or 'scheduled'). Other fields are added by later transitions.
local function new_job(key, spec, max_retries, now, state)
  redis.call('HSET', key, 'd', spec, 'mr', max_retries, 'a', 0, 'eq', now, 's', state)
end
