-- ARGV: P, placement id, server id, the ready placement JSON. Only if it is still on that server.
local pid = ARGV[2]
if redis.call('HGET', k('placement:' .. pid), 's') ~= ARGV[3] then return { 0 } end
redis.call('HSET', k('placement:' .. pid), 'j', ARGV[4])
local seq = bump()
publish(seq, 'confirm', ',"placement":' .. ARGV[4])
return { seq, ARGV[4] }
