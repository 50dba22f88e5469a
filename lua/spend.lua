-- Count one request's cost, once.
--
-- KEYS[1]  {prefix}:spend:counted:{request_id}   marker: this request id was counted
-- KEYS[2]  {prefix}:spend:{month}:total          string, integer micro-USD
-- KEYS[3]  {prefix}:spend:{month}:by_backend     hash, backend name -> micro-USD
-- KEYS[4]  {prefix}:spend:{month}:by_model       hash, model name -> micro-USD
-- ARGV[1]  cost in integer micro-USD (> 0)
-- ARGV[2]  backend name
-- ARGV[3]  model name
-- ARGV[4]  marker lifetime in seconds (longer than any retry or outage buffering)
--
-- Returns 1 when the cost was counted, 0 when this request id had been counted
-- already (a write retried after a timeout), so a retry never counts twice.
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[4]) then
  return 0
end
redis.call('INCRBY', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[3], ARGV[2], ARGV[1])
redis.call('HINCRBY', KEYS[4], ARGV[3], ARGV[1])
return 1
