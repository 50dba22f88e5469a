-- Count one request's cost, once, and let go of its reservation if it had one.
--
-- KEYS[1]  {prefix}:spend:counted:{request_id}     marker: this request id was counted
-- KEYS[2]  {prefix}:spend:{month}:total            string, integer micro-USD spent
-- KEYS[3]  {prefix}:spend:{month}:by_backend       hash, backend name -> micro-USD
-- KEYS[4]  {prefix}:spend:{month}:by_model         hash, model name -> micro-USD
-- KEYS[5]  {prefix}:spend:{month}:reserved         string, micro-USD held by reservations
-- KEYS[6]  {prefix}:reservations:{month}           hash, request id -> JSON reservation
-- KEYS[7]  {prefix}:reservations:{month}:expiry    sorted set, request id by expiry (ms)
-- ARGV[1]  request id
-- ARGV[2]  cost in integer micro-USD (0: only release the reservation)
-- ARGV[3]  backend name
-- ARGV[4]  model name
-- ARGV[5]  marker lifetime in seconds (longer than any retry or outage buffering)
--
-- Returns 1 when the cost was counted (or, for cost 0, a reservation released),
-- 0 when this request id had been counted already, so a retry never counts twice.
local held = redis.call('HGET', KEYS[6], ARGV[1])
if held then
  redis.call('HDEL', KEYS[6], ARGV[1])
  redis.call('ZREM', KEYS[7], ARGV[1])
  redis.call('DECRBY', KEYS[5], cjson.decode(held)['micro_usd'])
end
if tonumber(ARGV[2]) <= 0 then
  return held and 1 or 0
end
if not redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ARGV[5]) then
  return 0
end
redis.call('INCRBY', KEYS[2], ARGV[2])
redis.call('HINCRBY', KEYS[3], ARGV[3], ARGV[2])
redis.call('HINCRBY', KEYS[4], ARGV[4], ARGV[2])
return 1
