-- ARGV: P, holder, ttl ms, ids... Returns the ids the holder now holds (renewed or newly taken).
local holder, ttl = ARGV[2], ARGV[3]
local held = {}
for i = 4, #ARGV do
  local key = k('lease:' .. ARGV[i])
  local cur = redis.call('GET', key)
  if cur == holder then
    redis.call('PEXPIRE', key, ttl)
    held[#held + 1] = ARGV[i]
  elseif not cur then
    redis.call('SET', key, holder, 'PX', ttl)
    held[#held + 1] = ARGV[i]
  end
end
return held
