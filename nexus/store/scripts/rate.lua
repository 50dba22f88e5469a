-- Tenant rate limits over a sliding minute. One call carries a batch of checks (the
-- requests that arrived while the previous call was out); each check covers every
-- subject of one request (its key and its team): admitted only when each subject is
-- under its limits, and then counted in each. The time is Redis's own, so every
-- replica judges by one clock. Each subject's standing is read once per call and
-- kept up to date in Lua as the checks are admitted in order; its admissions are
-- written together at the end (one ZADD, one INCRBY), so a batch costs Redis a few
-- commands per subject, not per request.
--
-- A check may also ask for an allowance: a block of more request slots and tokens
-- for its replica to admit from without a call. It is granted only when, with the
-- block counted, every subject stays at or under half of each of its limits; the
-- block's entries are scored at the end of its period (the requests admitted from
-- it come later than now, and each must count for a minute after it), and
-- rate_settle.lua gives back what it did not use.
--
-- KEYS, per subject of the batch, once each (checks of one key share them):
--   {prefix}:rate:{subject}:requests   sorted set, "<request id>:<tokens>" by ms
--   {prefix}:rate:{subject}:tokens     string, tokens of the requests in the set
-- ARGV[1]  window, milliseconds (60000)
-- ARGV[2]  the checks as JSON (one argument: cheap to send in a batch):
--          [[request id, token estimate, [[i, rpm, tpm], ...one per subject]
--            (, slots asked, tokens asked, the allowance's period in ms)], ...]
--          where KEYS[i] and KEYS[i + 1] are the subject's keys (0: no such limit)
-- ARGV[3]  the longest period an allowance may have, milliseconds (the keys' TTLs
--          cover it)
-- ARGV[4]  settlements, applied before the checks, as JSON: [[request id, estimate,
--          actual tokens, [i, ...] (, allowance id, first, last)], ...] where KEYS[i],
--          KEYS[i + 1] are the keys of each subject it counted in. Each replaces a
--          request's token estimate with what it used (an entry already gone from
--          the window is left alone: it no longer counts); an allowance settles as its
--          slot 0 entry "<id>.0" and gives back its unused slots "<id>.<n>:0" for n from
--          first up to (not including) last. Giving back in the same call as the next
--          checks is what keeps a closed allowance from refusing them. Each subject's
--          entries are looked up, replaced and summed together (ZMSCORE, ZREM, ZADD,
--          INCRBY: Redis 6.2 or newer). The settlement writer sends no checks ("[]").
--
-- Returns JSON: per check in order, {1, 1 if an allowance was granted else 0, then
-- per subject: requests left, tokens left (-1: no limit), ms until its oldest request
-- leaves the window}, or {0, index of the subject that refused, "requests" or
-- "tokens", ms until a retry can pass, its requests left, its tokens left (-1: no
-- such limit)}. An allowance's entries are "<id>.0:<request's
-- tokens + tokens asked>" and "<id>.<n>:0" for n = 1 .. slots asked.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local window = tonumber(ARGV[1])
local longest = tonumber(ARGV[3] or '0')
local CHUNK = 2000  -- ZADD arguments per call: well inside Lua's stack
local SETTLE_CHUNK = 1000  -- members per variadic call

-- Settlements first: what they give back counts for the checks. Per subject (by its
-- KEYS index): the entries to replace, their replacements, and unused slots.
local bySubject, order = {}, {}
for _, entry in ipairs(cjson.decode(ARGV[4] or '[]')) do
  local id, estimate, actual = entry[1], tonumber(entry[2]), tonumber(entry[3])
  for _, at in ipairs(entry[4]) do
    local group = bySubject[at]
    if not group then
      group = {old = {}, new = {}, delta = {}}
      bySubject[at] = group
      order[#order + 1] = at
    end
    if estimate ~= actual then
      group.old[#group.old + 1] = id .. ':' .. estimate
      group.new[#group.new + 1] = id .. ':' .. actual
      group.delta[#group.delta + 1] = actual - estimate
    end
    if entry[5] then
      group.unused = group.unused or {}
      for n = tonumber(entry[6]), tonumber(entry[7]) - 1 do
        group.unused[#group.unused + 1] = entry[5] .. '.' .. n .. ':0'
      end
    end
  end
end

for _, at in ipairs(order) do
  local group, log, sum = bySubject[at], KEYS[at], KEYS[at + 1]
  local unused = group.unused or {}
  for from = 1, #unused, SETTLE_CHUNK do  -- slots hold no tokens: the sum stays as it is
    redis.call('ZREM', log, unpack(unused, from, math.min(from + SETTLE_CHUNK - 1, #unused)))
  end
  for from = 1, #group.old, SETTLE_CHUNK do
    local to = math.min(from + SETTLE_CHUNK - 1, #group.old)
    local scores = redis.call('ZMSCORE', log, unpack(group.old, from, to))
    local gone, added, delta = {}, {}, 0
    for i = from, to do
      local score = scores[i - from + 1]
      if score then
        gone[#gone + 1] = group.old[i]
        added[#added + 1] = score
        added[#added + 1] = group.new[i]
        delta = delta + group.delta[i]
      end
    end
    if #gone > 0 then
      redis.call('ZREM', log, unpack(gone))
      redis.call('ZADD', log, unpack(added))
      redis.call('INCRBY', sum, delta)
    end
  end
end

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
    local left_requests = rpm > 0 and rpm - s.count or -1
    local left_tokens = tpm > 0 and tpm - s.tokens or -1
    if rpm > 0 and s.count + 1 > rpm then
      refused = {0, i, 'requests', wait, left_requests, left_tokens}
    elseif tpm > 0 and s.tokens + tokens > tpm then
      refused = {0, i, 'tokens', wait, left_requests, left_tokens}
    end
    if refused then break end
  end
  local slots, more = tonumber(check[4] or 0), tonumber(check[5] or 0)
  if not refused and slots > 0 then  -- an allowance fits only under half of each limit
    for i = 1, #limits do
      local s = standing[limits[i][1]]
      local rpm, tpm = tonumber(limits[i][2]), tonumber(limits[i][3])
      if (rpm > 0 and 2 * (s.count + 1 + slots) > rpm) or
         (tpm > 0 and 2 * (s.tokens + tokens + more) > tpm) then
        slots, more = 0, 0
        break
      end
    end
  end
  if refused then
    answers[c] = refused
  else
    local answer = {1, slots > 0 and 1 or 0}
    for i = 1, #limits do
      local at = limits[i][1]
      local s = standing[at]
      local rpm, tpm = tonumber(limits[i][2]), tonumber(limits[i][3])
      if #s.adds == 0 then touched[#touched + 1] = at end
      s.count = s.count + 1 + slots
      s.tokens = s.tokens + tokens + more
      s.oldest = s.oldest or now
      if slots > 0 then
        local ends = now + math.min(tonumber(check[6]), longest)
        s.adds[#s.adds + 1] = ends
        s.adds[#s.adds + 1] = id .. '.0:' .. (tokens + more)
        for n = 1, slots do
          s.adds[#s.adds + 1] = ends
          s.adds[#s.adds + 1] = id .. '.' .. n .. ':0'
        end
      else
        s.adds[#s.adds + 1] = now
        s.adds[#s.adds + 1] = id .. ':' .. tokens
      end
      s.added = s.added + tokens + more
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
  redis.call('PEXPIRE', log, window + longest)  -- an allowance's entries are scored ahead
  redis.call('PEXPIRE', sum, window + longest)
end
return cjson.encode(answers)
