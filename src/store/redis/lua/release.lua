-- ARGV: P, placement id, server id ("" = any). Frees the placement's units.
local pid, want = ARGV[2], ARGV[3]
local h = redis.call('HMGET', k('placement:' .. pid), 's', 'u', 'j')
if not h[1] then return { 'not-found' } end
if want ~= '' and h[1] ~= want then return { 'wrong-server', h[3] } end
redis.call('DEL', k('placement:' .. pid))
redis.call('SREM', k('placements:' .. h[1]), pid)
local reserved = 0
if redis.call('SISMEMBER', k('servers'), h[1]) == 1 then
  reserved = redis.call('HINCRBY', k('reserved'), h[1], -tonumber(h[2]))
  if reserved < 0 then
    reserved = 0
    redis.call('HSET', k('reserved'), h[1], 0)
  end
end
local seq = bump()
publish(seq, 'release', ',"id":' .. str(pid) .. ',"serverId":' .. str(h[1]) .. ',"reserved":' .. reserved)
return { 'released', h[3], seq }
