-- Take the leader lease if it is free, or extend it if we already hold it.
--
-- KEYS[1]  {prefix}:leader         string: the holder's token ("{replica}/{random}")
-- KEYS[2]  {prefix}:leader:epoch   string: integer, +1 on every new acquisition
-- ARGV[1]  our token
-- ARGV[2]  lease time to live, milliseconds
--
-- Returns the epoch we lead in, or 0 when another replica holds the lease.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(redis.call('GET', KEYS[2]) or '0')
end
return 0
