-- Strict budgets: hold a paid request's estimated cost before it is sent, against the
-- fleet's monthly limit and its tenant key's and team's budgets, all or none.
--
-- KEYS[1]  {prefix}:spend:{month}:total            string, integer micro-USD spent
-- KEYS[2]  {prefix}:spend:{month}:reserved         string, micro-USD held by reservations
-- KEYS[3]  {prefix}:reservations:{month}           hash, request id -> JSON reservation
-- KEYS[4]  {prefix}:reservations:{month}:expiry    sorted set, request id by expiry (ms)
-- KEYS[5]  {prefix}:spend:{month}:by_key           hash, key name -> micro-USD spent
-- KEYS[6]  {prefix}:spend:{month}:by_team          hash, team name -> micro-USD spent
-- KEYS[7]  {prefix}:spend:{month}:reserved_by_key  hash, key name -> micro-USD held
-- KEYS[8]  {prefix}:spend:{month}:reserved_by_team hash, team name -> micro-USD held
-- ARGV[1]  request id
-- ARGV[2]  estimate, integer micro-USD
-- ARGV[3]  the fleet's monthly limit, integer micro-USD (-1: none)
-- ARGV[4]  expiry, unix milliseconds (after it the leader counts the estimate as spent)
-- ARGV[5]  the reservation as JSON: {"micro_usd": "<estimate>", "backend", "model",
--          "replica", "key", "team"}
-- ARGV[6], ARGV[7]  key name ("" none) and its budget (-1: none)
-- ARGV[8], ARGV[9]  team name ("" none) and its budget (-1: none)
--
-- Returns 1 when held (or already held by this request id); 0 when the fleet's limit,
-- -1 when the key's budget, -2 when the team's would be passed (nothing held).
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then
  return 1
end
local estimate = tonumber(ARGV[2])
if tonumber(ARGV[3]) >= 0 then
  local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
  local reserved = tonumber(redis.call('GET', KEYS[2]) or '0')
  if spent + reserved + estimate > tonumber(ARGV[3]) then
    return 0
  end
end
local function over(spent_key, held_key, name, limit)
  if name == '' or tonumber(limit) < 0 then return false end
  local used = tonumber(redis.call('HGET', spent_key, name) or '0')
    + tonumber(redis.call('HGET', held_key, name) or '0')
  return used + estimate > tonumber(limit)
end
if over(KEYS[5], KEYS[7], ARGV[6], ARGV[7]) then return -1 end
if over(KEYS[6], KEYS[8], ARGV[8], ARGV[9]) then return -2 end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[5])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
redis.call('INCRBY', KEYS[2], estimate)
if ARGV[6] ~= '' then redis.call('HINCRBY', KEYS[7], ARGV[6], estimate) end
if ARGV[8] ~= '' then redis.call('HINCRBY', KEYS[8], ARGV[8], estimate) end
return 1
