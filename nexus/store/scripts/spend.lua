-- Count requests' costs, each once, and let go of their reservations if they had one.
-- One call carries a batch of n records (n >= 1): record i uses KEYS[12i-11 .. 12i] and
-- ARGV[7i-5 .. 7i+1].
--
-- KEYS, per record:
--   1  {prefix}:spend:counted:{request_id}     marker: this request id was counted
--   2  {prefix}:spend:{month}:total            string, integer micro-USD spent
--   3  {prefix}:spend:{month}:by_backend       hash, backend name -> micro-USD
--   4  {prefix}:spend:{month}:by_model         hash, model name -> micro-USD
--   5  {prefix}:spend:{month}:reserved         string, micro-USD held by reservations
--   6  {prefix}:reservations:{month}           hash, request id -> JSON reservation
--   7  {prefix}:reservations:{month}:expiry    sorted set, request id by expiry (ms)
--   8  {prefix}:spend:{month}:by_key           hash, tenant key name -> micro-USD
--   9  {prefix}:spend:{month}:by_team          hash, team name -> micro-USD
--  10  {prefix}:spend:{month}:reserved_by_key  hash, key name -> micro-USD held
--  11  {prefix}:spend:{month}:reserved_by_team hash, team name -> micro-USD held
--  12  {prefix}:spend:{month}:by_day           hash, YYYY-MM-DD -> micro-USD
-- ARGV[1]  marker lifetime in seconds (longer than any retry or outage buffering)
-- ARGV, per record: request id, cost in integer micro-USD (0: only release the
--   reservation), backend name, model name, key name ("" none), team name ("" none),
--   day ("" none)
--
-- Returns one integer per record: 1 when its cost was counted (or, for cost 0, its
-- reservation released), 0 when that request id had been counted already, so a
-- batch sent again after a timeout never counts anything twice.
local results = {}
local n = #KEYS / 12
for i = 1, n do
  local k = 12 * (i - 1)
  local a = 1 + 7 * (i - 1)
  local id, cost = ARGV[a + 1], tonumber(ARGV[a + 2])
  local held = redis.call('HGET', KEYS[k + 6], id)
  if held then
    local r = cjson.decode(held)
    redis.call('HDEL', KEYS[k + 6], id)
    redis.call('ZREM', KEYS[k + 7], id)
    redis.call('DECRBY', KEYS[k + 5], r['micro_usd'])
    if r['key'] and r['key'] ~= '' then
      redis.call('HINCRBY', KEYS[k + 10], r['key'], -tonumber(r['micro_usd']))
    end
    if r['team'] and r['team'] ~= '' then
      redis.call('HINCRBY', KEYS[k + 11], r['team'], -tonumber(r['micro_usd']))
    end
  end
  if cost <= 0 then
    results[i] = held and 1 or 0
  elseif redis.call('SET', KEYS[k + 1], cost, 'NX', 'EX', ARGV[1]) then
    redis.call('INCRBY', KEYS[k + 2], cost)
    redis.call('HINCRBY', KEYS[k + 3], ARGV[a + 3], cost)
    redis.call('HINCRBY', KEYS[k + 4], ARGV[a + 4], cost)
    if ARGV[a + 5] ~= '' then redis.call('HINCRBY', KEYS[k + 8], ARGV[a + 5], cost) end
    if ARGV[a + 6] ~= '' then redis.call('HINCRBY', KEYS[k + 9], ARGV[a + 6], cost) end
    if ARGV[a + 7] ~= '' then redis.call('HINCRBY', KEYS[k + 12], ARGV[a + 7], cost) end
    results[i] = 1
  else
    -- Counted before: refresh the marker. A write, so that a WAIT after this call
    -- also covers the first, unconfirmed one (replication keeps their order).
    redis.call('EXPIRE', KEYS[k + 1], ARGV[1])
    results[i] = 0
  end
end
return results
