-- KEYS[1]: one token bucket, a hash { tokens, at } (at: ms on Redis's clock). ARGV: rate (tokens
-- per second, > 0), burst (capacity, > 0), cost (>= 0). Returns { allowed (1 or 0), retryAfterMs }.
-- The HTTP proxy's rate limiter (src/proxy/rate-limit/redis.ts): src/core/token-bucket.ts `take`,
-- the same arithmetic, run atomically here so that any number of instances share one bucket, and
-- on Redis's clock (TIME) so that their clocks do not matter (scripts replicate their effects, the
-- default since Redis 5, so reading TIME before writing is allowed). Standalone: common.lua is not
-- prepended (its ARGV[1] is a pool prefix) and nothing is published.
-- No state means a full bucket. Refused requests write nothing (the refill is a function of time).
-- The key expires when the bucket would be full again, + 1 s: a full bucket is the same as none.
-- A cost above burst is refused without taking anything; retryAfterMs is then a full refill's time.
if redis.replicate_commands then pcall(redis.replicate_commands) end
local EPSILON = 1e-9

-- Arguments are checked before anything is read or written.
local function positive(s, zero_ok)
  local n = tonumber(s)
  if n == nil or n ~= n or n == math.huge then return nil end
  if n < 0 or (n == 0 and not zero_ok) then return nil end
  return n
end
local rate, burst, cost = positive(ARGV[1]), positive(ARGV[2]), positive(ARGV[3], true)
if not (rate and burst and cost) then
  return redis.error_reply('rate-limit: rate and burst must be finite numbers > 0, cost a finite number >= 0')
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000

-- A stored state that does not parse (or a negative count) counts as no state: a full bucket.
local h = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(h[1]), tonumber(h[2])
if tokens == nil or at == nil or tokens ~= tokens or at ~= at or tokens < 0 then
  tokens, at = burst, now
else
  -- A clock that went backwards (a failover to a node behind) refills nothing and keeps `at`.
  if now > at then
    tokens = math.min(burst, tokens + ((now - at) * rate) / 1000)
    at = now
  else
    tokens = math.min(burst, tokens)
  end
end

-- Whole ms, rounded up; capped (~31 700 years) so that a tiny rate cannot overflow the integer
-- reply or make PEXPIRE fail after HSET has written.
local function ms(x) return math.min(math.ceil(x), 1e15) end

if cost > burst then return { 0, ms((burst * 1000) / rate) } end
if tokens + EPSILON < cost then return { 0, ms(((cost - tokens) * 1000) / rate) } end

tokens = math.max(0, tokens - cost)
local full_in = 0
if tokens < burst then full_in = ms(((burst - tokens) * 1000) / rate) end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'at', string.format('%.17g', at))
redis.call('PEXPIRE', KEYS[1], full_in + 1000)
return { 1, 0 }
