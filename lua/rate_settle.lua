-- Tenant token limits: replace requests' token estimates with what they used.
-- One call carries a batch of settlements, each for every subject its request counted in.
--
-- KEYS, per subject of the batch, once each: its requests set, then its tokens
--   string (as in rate.lua)
-- ARGV[1]  the settlements as JSON: [[request id, estimate, actual tokens, [i, ...]],
--          ...] where KEYS[i], KEYS[i + 1] are the keys of each subject it counted in
--
-- Returns the number of entries changed (an entry already gone from the window is
-- left alone: it no longer counts).
local changed = 0
for _, entry in ipairs(cjson.decode(ARGV[1])) do
  local id, estimate, actual = entry[1], tonumber(entry[2]), tonumber(entry[3])
  for _, at in ipairs(entry[4]) do
    local log, sum = KEYS[at], KEYS[at + 1]
    local member = id .. ':' .. estimate
    local score = redis.call('ZSCORE', log, member)
    if score then
      redis.call('ZREM', log, member)
      redis.call('ZADD', log, score, id .. ':' .. actual)
      redis.call('INCRBY', sum, actual - estimate)
      changed = changed + 1
    end
  end
end
return changed
