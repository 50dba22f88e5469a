-- A leader-only write: set hash fields only if the writer's epoch is the current one,
-- so a paused old leader that wakes up cannot overwrite its successor's work.
--
-- KEYS[1]  {prefix}:leader:epoch   string: the current epoch
-- KEYS[2]  the hash to write
-- ARGV[1]  the writer's epoch
-- ARGV[2]  seconds the hash lives (0: no expiry)
-- ARGV[3..] field, value, field, value, ...
--
-- Returns 1 when written, 0 when the epoch is stale (nothing written).
if tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[1]) then
  return 0
end
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
if tonumber(ARGV[2]) > 0 then
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
return 1
