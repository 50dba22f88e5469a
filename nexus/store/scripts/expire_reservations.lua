-- Leader only: count reservations whose replica never settled them (it died) as spent
-- at their estimate, once; refused when the caller's epoch is not the current one.
--
-- KEYS[1]  {prefix}:leader:epoch                   string: the current epoch
-- KEYS[2]  {prefix}:reservations:{month}:expiry    sorted set, request id by expiry (ms)
-- KEYS[3]  {prefix}:reservations:{month}           hash, request id -> JSON reservation
-- KEYS[4]  {prefix}:spend:{month}:reserved         string, micro-USD held by reservations
-- KEYS[5]  {prefix}:spend:{month}:total            string, integer micro-USD spent
-- KEYS[6]  {prefix}:spend:{month}:by_backend       hash, backend name -> micro-USD
-- KEYS[7]  {prefix}:spend:{month}:by_model         hash, model name -> micro-USD
-- KEYS[8]  {prefix}:spend:{month}:by_key           hash, key name -> micro-USD
-- KEYS[9]  {prefix}:spend:{month}:by_team          hash, team name -> micro-USD
-- KEYS[10] {prefix}:spend:{month}:reserved_by_key  hash, key name -> micro-USD held
-- KEYS[11] {prefix}:spend:{month}:reserved_by_team hash, team name -> micro-USD held
-- KEYS[12] {prefix}:spend:{month}:by_day           hash, YYYY-MM-DD -> micro-USD
-- KEYS[13..12+n]  {prefix}:spend:counted:{id} for each id in ARGV[5..]
-- ARGV[1]  the caller's epoch
-- ARGV[2]  now, unix milliseconds
-- ARGV[3]  marker lifetime in seconds
-- ARGV[4]  today, YYYY-MM-DD (UTC): the day the estimates are counted on
-- ARGV[5..4+n]  request ids the caller found expired
--
-- Returns the number of reservations counted, or -1 when the epoch is stale.
if tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[1]) then
  return -1
end
local counted = 0
for i = 5, #ARGV do
  local id = ARGV[i]
  local expiry = redis.call('ZSCORE', KEYS[2], id)
  local held = redis.call('HGET', KEYS[3], id)
  if held and expiry and tonumber(expiry) <= tonumber(ARGV[2]) then
    local r = cjson.decode(held)
    redis.call('HDEL', KEYS[3], id)
    redis.call('ZREM', KEYS[2], id)
    local amount = tonumber(r['micro_usd'])
    local key, team = r['key'] or '', r['team'] or ''
    redis.call('DECRBY', KEYS[4], amount)
    if key ~= '' then redis.call('HINCRBY', KEYS[10], key, -amount) end
    if team ~= '' then redis.call('HINCRBY', KEYS[11], team, -amount) end
    if redis.call('SET', KEYS[8 + i], amount, 'NX', 'EX', ARGV[3]) then
      redis.call('INCRBY', KEYS[5], amount)
      redis.call('HINCRBY', KEYS[6], r['backend'], amount)
      redis.call('HINCRBY', KEYS[7], r['model'], amount)
      if key ~= '' then redis.call('HINCRBY', KEYS[8], key, amount) end
      if team ~= '' then redis.call('HINCRBY', KEYS[9], team, amount) end
      redis.call('HINCRBY', KEYS[12], ARGV[4], amount)
      counted = counted + 1
    end
  end
end
return counted
