-- Tenant rate limits over a sliding minute. One call carries a batch of checks (the
-- requests that arrived while the previous call was out); each check covers every
-- subject of one request (its key and its team): admitted only when each subject is
-- under its limits, and then counted in each. The time is Redis's own, so every
-- replica judges by one clock. Each subject's standing is read once per call and
-- kept up to date in Lua as the checks are admitted in order; its admissions are
-- written together at the end (one ZADD, one INCRBY), so a batch costs Redis a few
-- commands per subject, not per request.
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
local CHUNK = 2000  -- ZADD arguments per call: well inside Lua's stack

-- KEYS index -> {count, tokens, oldest, added members, added tokens}
local standing = {}
local function subject(at)
  local s = standing[at]
  if s then return s end
  local log, sum = KEYS[at], KEYS[at + 1]
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
  s = {count = redis.call('ZCARD', log), tokens = tonumber(redis.call('GET', sum) or '0'),
       oldest = first[2] and tonumber(first[2]) or nil, adds = {}, added = 0}
  standing[at] = s
  return s
end

local answers = {}
local touched = {}
for c, check in ipairs(cjson.decode(ARGV[2])) do
  local id, tokens, limits = check[1], tonumber(check[2]), check[3]
  local refused = nil
  for i = 1, #limits do
    local s = subject(limits[i][1])
    local rpm, tpm = tonumber(limits[i][2]), tonumber(limits[i][3])
    local wait = math.max(1, (s.oldest or now) + window - now)
    if rpm > 0 and s.count + 1 > rpm then
      refused = {0, i, 'requests', wait}
    elseif tpm > 0 and s.tokens + tokens > tpm then
      refused = {0, i, 'tokens', wait}
    end
    if refused then break end
  end
  if refused then
    answers[c] = refused
  else
    local answer = {1}
    for i = 1, #limits do
      local at = limits[i][1]
      local s = standing[at]
      local rpm, tpm = tonumber(limits[i][2]), tonumber(limits[i][3])
      if #s.adds == 0 then touched[#touched + 1] = at end
      s.count = s.count + 1
      s.tokens = s.tokens + tokens
      s.oldest = s.oldest or now
      s.adds[#s.adds + 1] = now
      s.adds[#s.adds + 1] = id .. ':' .. tokens
      s.added = s.added + tokens
      answer[#answer + 1] = rpm > 0 and rpm - s.count or -1
      answer[#answer + 1] = tpm > 0 and tpm - s.tokens or -1
      answer[#answer + 1] = s.oldest + window - now
    end
    answers[c] = answer
  end
end

for _, at in ipairs(touched) do
  local s = standing[at]
  local log, sum = KEYS[at], KEYS[at + 1]
  for from = 1, #s.adds, CHUNK do
    redis.call('ZADD', log, unpack(s.adds, from, math.min(from + CHUNK - 1, #s.adds)))
  end
  redis.call('INCRBY', sum, s.added)
  redis.call('PEXPIRE', log, window)
  redis.call('PEXPIRE', sum, window)
end
return cjson.encode(answers)
