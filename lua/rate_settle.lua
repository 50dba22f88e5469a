-- Tenant token limits: replace requests' token estimates with what they used.
-- One call carries a batch of settlements, each for every subject its request counted in.
--
-- KEYS, per subject of the batch, once each: its requests set, then its tokens
--   string (as in rate.lua)
-- ARGV[1]  the settlements as JSON: [[request id, estimate, actual tokens, [i, ...]],
--          ...] where KEYS[i], KEYS[i + 1] are the keys of each subject it counted in
--
-- Returns the number of entries changed (an entry already gone from the window is
-- left alone: it no longer counts). Each subject's entries are looked up, replaced and
-- summed together (ZMSCORE, ZREM, ZADD, INCRBY: Redis 6.2 or newer).
local CHUNK = 1000  -- members per variadic call: well inside Lua's stack
local bySubject, order = {}, {}
for _, entry in ipairs(cjson.decode(ARGV[1])) do
  local id, estimate, actual = entry[1], tonumber(entry[2]), tonumber(entry[3])
  for _, at in ipairs(entry[4]) do
    local group = bySubject[at]
    if not group then
      group = {old = {}, new = {}, delta = {}}
      bySubject[at] = group
      order[#order + 1] = at
    end
    group.old[#group.old + 1] = id .. ':' .. estimate
    group.new[#group.new + 1] = id .. ':' .. actual
    group.delta[#group.delta + 1] = actual - estimate
  end
end

local changed = 0
for _, at in ipairs(order) do
  local group, log, sum = bySubject[at], KEYS[at], KEYS[at + 1]
  for from = 1, #group.old, CHUNK do
    local to = math.min(from + CHUNK - 1, #group.old)
    local scores = redis.call('ZMSCORE', log, unpack(group.old, from, to))
    local gone, added, delta = {}, {}, 0
    for i = from, to do
      local score = scores[i - from + 1]
      if score then
        gone[#gone + 1] = group.old[i]
        added[#added + 1] = score
        added[#added + 1] = group.new[i]
        delta = delta + group.delta[i]
      end
    end
    if #gone > 0 then
      redis.call('ZREM', log, unpack(gone))
      redis.call('ZADD', log, unpack(added))
      redis.call('INCRBY', sum, delta)
      changed = changed + #gone
    end
  end
end
return changed
