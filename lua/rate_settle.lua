-- Tenant token limits: replace requests' token estimates with what they used.
-- One call carries a batch of settlements, each for every subject its request counted in.
--
-- KEYS, per settlement and subject, in order: the subject's requests set, then its
--   tokens string (as in rate.lua)
-- ARGV, per settlement: number of subjects, request id, estimate, actual tokens
--
-- Returns the number of entries changed (an entry already gone from the window is
-- left alone: it no longer counts).
local changed, k, a = 0, 1, 1
while a <= #ARGV do
  local subjects, id = tonumber(ARGV[a]), ARGV[a + 1]
  local estimate, actual = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  for _ = 1, subjects do
    local log, sum = KEYS[k], KEYS[k + 1]
    local member = id .. ':' .. estimate
    local score = redis.call('ZSCORE', log, member)
    if score then
      redis.call('ZREM', log, member)
      redis.call('ZADD', log, score, id .. ':' .. actual)
      redis.call('INCRBY', sum, actual - estimate)
      changed = changed + 1
    end
    k = k + 2
  end
  a = a + 4
end
return changed
