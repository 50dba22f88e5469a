-- Strict budgets: hold a paid request's estimated cost before it is sent.
--
-- KEYS[1]  {prefix}:spend:{month}:total            string, integer micro-USD spent
-- KEYS[2]  {prefix}:spend:{month}:reserved         string, micro-USD held by reservations
-- KEYS[3]  {prefix}:reservations:{month}           hash, request id -> JSON reservation
-- KEYS[4]  {prefix}:reservations:{month}:expiry    sorted set, request id by expiry (ms)
-- ARGV[1]  request id
-- ARGV[2]  estimate, integer micro-USD
-- ARGV[3]  the month's hard limit, integer micro-USD
-- ARGV[4]  expiry, unix milliseconds (after it the leader counts the estimate as spent)
-- ARGV[5]  the reservation as JSON: {"micro_usd": "<estimate>", "backend", "model", "replica"}
--
-- Returns 1 when held (or already held by this request id), 0 when spent + reserved +
-- estimate would pass the limit (nothing held).
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then
  return 1
end
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local reserved = tonumber(redis.call('GET', KEYS[2]) or '0')
if spent + reserved + tonumber(ARGV[2]) > tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[5])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
redis.call('INCRBY', KEYS[2], ARGV[2])
return 1
