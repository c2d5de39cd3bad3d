-- start_marks: the start marks of leased jobs about to be handed to a handler (see start.lua),
-- included by start.lua and by ack.lua (whose call may carry the next jobs' marks: one round
-- trip where a runner's slot turns over, instead of an ack and a start).
-- packed: a JSON array of pairs, flat: [id, token, id, token, ...] (tokens as strings).
-- Returns: the ids no longer held under that token (they must not start).
local function start_marks(prefix, packed, now)
  local pairs_ = cjson.decode(packed)
  local lost = {}
  for i = 1, #pairs_, 2 do
    local id, token = pairs_[i], pairs_[i + 1]
    local key = prefix .. id
    local f = redis.call('HMGET', key, 't', 's')
    if f[1] == token and f[2] == 'reserved' then  -- still held under this lease
      redis.call('HSET', key, 'sg', token, 'st', now)
    else
      lost[#lost + 1] = id
    end
  end
  return lost
end
