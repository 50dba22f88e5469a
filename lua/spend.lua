-- Count requests' costs, each once, and let go of their reservations if they had one.
-- One call carries a batch of n records (n >= 1): record i uses KEYS[7i-6 .. 7i] and
-- ARGV[4i-2 .. 4i+1].
--
-- KEYS, per record:
--   1  {prefix}:spend:counted:{request_id}     marker: this request id was counted
--   2  {prefix}:spend:{month}:total            string, integer micro-USD spent
--   3  {prefix}:spend:{month}:by_backend       hash, backend name -> micro-USD
--   4  {prefix}:spend:{month}:by_model         hash, model name -> micro-USD
--   5  {prefix}:spend:{month}:reserved         string, micro-USD held by reservations
--   6  {prefix}:reservations:{month}           hash, request id -> JSON reservation
--   7  {prefix}:reservations:{month}:expiry    sorted set, request id by expiry (ms)
-- ARGV[1]  marker lifetime in seconds (longer than any retry or outage buffering)
-- ARGV, per record: request id, cost in integer micro-USD (0: only release the
--   reservation), backend name, model name
--
-- Returns one integer per record: 1 when its cost was counted (or, for cost 0, its
-- reservation released), 0 when that request id had been counted already, so a
-- batch sent again after a timeout never counts anything twice.
local results = {}
local n = #KEYS / 7
for i = 1, n do
  local k = 7 * (i - 1)
  local a = 1 + 4 * (i - 1)
  local id, cost = ARGV[a + 1], tonumber(ARGV[a + 2])
  local held = redis.call('HGET', KEYS[k + 6], id)
  if held then
    redis.call('HDEL', KEYS[k + 6], id)
    redis.call('ZREM', KEYS[k + 7], id)
    redis.call('DECRBY', KEYS[k + 5], cjson.decode(held)['micro_usd'])
  end
  if cost <= 0 then
    results[i] = held and 1 or 0
  elseif redis.call('SET', KEYS[k + 1], cost, 'NX', 'EX', ARGV[1]) then
    redis.call('INCRBY', KEYS[k + 2], cost)
    redis.call('HINCRBY', KEYS[k + 3], ARGV[a + 3], cost)
    redis.call('HINCRBY', KEYS[k + 4], ARGV[a + 4], cost)
    results[i] = 1
  else
    results[i] = 0
  end
end
return results
