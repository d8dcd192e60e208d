-- ARGV: P, placement id, server id ("" = any), attempt ("" = any). Frees the placement's units.
local pid, want, attempt = ARGV[2], ARGV[3], ARGV[4] or ''
local h = redis.call('HMGET', k('placement:' .. pid), 's', 'u', 'j', 'a')
if not h[1] then return { 'not-found' } end
if attempt ~= '' and h[4] ~= attempt then return { 'not-found' } end
if want ~= '' and h[1] ~= want then return { 'wrong-server', h[3] } end
local reserved = release_placement(pid, h[1], h[2])
local seq = publish_release(pid, h[1], reserved)
return { 'released', h[3], seq }
