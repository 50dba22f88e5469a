-- Tenant rate limits over a sliding minute. One call carries a batch of checks (the
-- requests that arrived while the previous call was out); each check covers every
-- subject of one request (its key and its team): admitted only when each subject is
-- under its limits, and then counted in each. The time is Redis's own, so every
-- replica judges by one clock.
--
-- KEYS, per subject of the batch, once each (checks of one key share them):
--   {prefix}:rate:{subject}:requests   sorted set, "<request id>:<tokens>" by ms
--   {prefix}:rate:{subject}:tokens     string, tokens of the requests in the set
-- ARGV[1]  window, milliseconds (60000)
-- ARGV[2]  the checks as JSON (one argument: cheap to send in a batch):
--          [[request id, token estimate, [[i, rpm, tpm], ...one per subject]], ...]
--          where KEYS[i] and KEYS[i + 1] are the subject's keys (0: no such limit)
--
-- Returns JSON: per check in order, {1, then per subject: requests left, tokens left
-- (-1: no limit), ms until its oldest request leaves the window}, or {0, index of the
-- subject that refused, "requests" or "tokens", ms until a retry can pass}.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local window = tonumber(ARGV[1])

local function standing(log, sum)
  local gone = redis.call('ZRANGEBYSCORE', log, '-inf', now - window)
  if #gone > 0 then
    local freed = 0
    for _, member in ipairs(gone) do
      freed = freed + tonumber(string.match(member, ':(%d+)$'))
    end
    redis.call('ZREMRANGEBYSCORE', log, '-inf', now - window)
    redis.call('DECRBY', sum, freed)
  end
  local first = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
  return redis.call('ZCARD', log), tonumber(redis.call('GET', sum) or '0'),
    first[2] and tonumber(first[2]) or now
end

local answers = {}
for c, check in ipairs(cjson.decode(ARGV[2])) do
  local id, tokens, limits = check[1], tonumber(check[2]), check[3]
  local n = #limits
  local counts, sums, oldest, refused = {}, {}, {}, nil
  for i = 1, n do
    local at = limits[i][1]
    counts[i], sums[i], oldest[i] = standing(KEYS[at], KEYS[at + 1])
    local rpm, tpm = tonumber(limits[i][2]), tonumber(limits[i][3])
    if not refused and rpm > 0 and counts[i] + 1 > rpm then
      refused = {0, i, 'requests', math.max(1, oldest[i] + window - now)}
    elseif not refused and tpm > 0 and sums[i] + tokens > tpm then
      refused = {0, i, 'tokens', math.max(1, oldest[i] + window - now)}
    end
  end
  if refused then
    answers[c] = refused
  else
    local answer = {1}
    for i = 1, n do
      local at = limits[i][1]
      local log, sum = KEYS[at], KEYS[at + 1]
      local rpm, tpm = tonumber(limits[i][2]), tonumber(limits[i][3])
      redis.call('ZADD', log, now, id .. ':' .. tokens)
      redis.call('INCRBY', sum, tokens)
      redis.call('PEXPIRE', log, window)
      redis.call('PEXPIRE', sum, window)
      answer[#answer + 1] = rpm > 0 and rpm - counts[i] - 1 or -1
      answer[#answer + 1] = tpm > 0 and tpm - sums[i] - tokens or -1
      answer[#answer + 1] = oldest[i] + window - now
    end
    answers[c] = answer
  end
end
return cjson.encode(answers)
