-- Give the leader lease up (on shutdown), only if we still hold it.
--
-- KEYS[1]  {prefix}:leader   string: the holder's token
-- ARGV[1]  our token
--
-- Returns 1 when released, 0 when it was not ours.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
