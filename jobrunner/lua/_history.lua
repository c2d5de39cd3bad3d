-- history: one entry per ended job (done, dead, cancelled) on its queue's history STREAM, for
-- the archiver (jobrunner/archive) to copy into PostgreSQL and then XACK + XDEL. Included by
-- the scripts that end a job; they call it only when their history bound is above 0 (the
-- default is 0: no stream, nothing written). The entry carries what the archive keeps, read
-- before the hash may be deleted or expire: the spec blob d, attempts a, eq, st, and what the
-- caller passes (state, finish time, error, result). The stream is then trimmed to about
-- `bound` entries (MAXLEN ~: whole nodes): an entry trimmed is one the archiver had not yet
-- archived (archived ones are deleted), counted in the stats hash as history_trimmed. History
-- is a record of a job that has ended, never a job: trimming it loses no work.
local function history(stream, bound, stats, key, id, state, now, err, result)
  local f = redis.call('HMGET', key, 'd', 'a', 'eq', 'st')
  local entry = {'id', id, 's', state, 'fi', now, 'd', f[1] or '', 'a', f[2] or '0'}
  if f[3] then entry[#entry + 1] = 'eq'; entry[#entry + 1] = f[3] end
  if f[4] then entry[#entry + 1] = 'st'; entry[#entry + 1] = f[4] end
  if err and err ~= '' then entry[#entry + 1] = 'e'; entry[#entry + 1] = err end
  if result and result ~= '' then entry[#entry + 1] = 'r'; entry[#entry + 1] = result end
  redis.call('XADD', stream, '*', unpack(entry))
  local trimmed = redis.call('XTRIM', stream, 'MAXLEN', '~', bound)
  if trimmed > 0 then redis.call('HINCRBY', stats, 'history_trimmed', trimmed) end
end
