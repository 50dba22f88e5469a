-- Extend the leader lease, only if we still hold it.
--
-- KEYS[1]  {prefix}:leader   string: the holder's token
-- ARGV[1]  our token
-- ARGV[2]  lease time to live, milliseconds
--
-- Returns 1 when renewed, 0 when the lease is lost (expired, or another replica holds it).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
