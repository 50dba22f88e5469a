-- Tenant rate limits over a sliding minute, for every subject of a request at once
-- (its key and its team): admitted only when each is under its limits, and then
-- counted in each. The time is Redis's own, so every replica judges by one clock.
--
-- KEYS, per subject i:
--   2i-1  {prefix}:rate:{subject}:requests   sorted set, "<request id>:<tokens>" by ms
--   2i    {prefix}:rate:{subject}:tokens     string, tokens of the requests in the set
-- ARGV[1]  request id
-- ARGV[2]  window, milliseconds (60000)
-- ARGV[3]  the request's token estimate
-- ARGV, per subject i: ARGV[2+2i] rpm, ARGV[3+2i] tpm (0: no such limit)
--
-- Returns {1, now_ms, then per subject: requests left, tokens left (-1: no limit),
-- ms until the oldest request leaves the window}, or {0, index of the subject that
-- refused, "requests" or "tokens", ms until a retry can pass}.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local window, tokens = tonumber(ARGV[2]), tonumber(ARGV[3])
local n = #KEYS / 2
local counts, sums, oldest = {}, {}, {}
for i = 1, n do
  local log, sum = KEYS[2 * i - 1], KEYS[2 * i]
  local gone = redis.call('ZRANGEBYSCORE', log, '-inf', now - window)
  if #gone > 0 then
    local freed = 0
    for _, member in ipairs(gone) do
      freed = freed + tonumber(string.match(member, ':(%d+)$'))
    end
    redis.call('ZREMRANGEBYSCORE', log, '-inf', now - window)
    redis.call('DECRBY', sum, freed)
  end
  counts[i] = redis.call('ZCARD', log)
  sums[i] = tonumber(redis.call('GET', sum) or '0')
  local first = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
  oldest[i] = first[2] and tonumber(first[2]) or now
  local rpm, tpm = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])
  local limit = nil
  if rpm > 0 and counts[i] + 1 > rpm then
    limit = 'requests'
  elseif tpm > 0 and sums[i] + tokens > tpm then
    limit = 'tokens'
  end
  if limit then
    return {0, i, limit, math.max(1, oldest[i] + window - now)}
  end
end
local result = {1, now}
for i = 1, n do
  local log, sum = KEYS[2 * i - 1], KEYS[2 * i]
  redis.call('ZADD', log, now, ARGV[1] .. ':' .. tokens)
  redis.call('INCRBY', sum, tokens)
  redis.call('PEXPIRE', log, window)
  redis.call('PEXPIRE', sum, window)
  local rpm, tpm = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])
  result[#result + 1] = rpm > 0 and rpm - counts[i] - 1 or -1
  result[#result + 1] = tpm > 0 and tpm - sums[i] - tokens or -1
  result[#result + 1] = oldest[i] + window - now
end
return result
