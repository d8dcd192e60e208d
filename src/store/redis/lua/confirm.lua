-- ARGV: P, placement id, server id, the ready placement JSON, attempt ("" = any). Only if the
-- placement is still on that server (and still that reservation).
local pid, attempt = ARGV[2], ARGV[5] or ''
if not decode(ARGV[4]) then return redis.error_reply('confirm: the placement is not valid JSON') end
local h = redis.call('HMGET', k('placement:' .. pid), 's', 'a')
if h[1] ~= ARGV[3] then return { 0 } end
if attempt ~= '' and h[2] ~= attempt then return { 0 } end
redis.call('HSET', k('placement:' .. pid), 'j', ARGV[4])
redis.call('HDEL', k('placement:' .. pid), 'd')
local seq = bump()
publish(seq, 'confirm', ',"placement":' .. ARGV[4])
return { seq, ARGV[4] }
