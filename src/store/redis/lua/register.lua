-- ARGV: P, server JSON (a new registration). Replaces an earlier registration of the same id; its
-- placements are released and returned after the sequence number and the new record.
local s = cjson.decode(ARGV[2])
local old = load_server(s.id)
local lost, dropped = {}, '[]'
if old then
  lost, dropped = drop_placements(s.id)
  s.rev = old.rev + 1
end
redis.call('SADD', k('servers'), s.id)
redis.call('HSET', k('reserved'), s.id, 0)
s.reserved = 0
save_server(s)
local j = cjson.encode(s)
local seq = bump()
publish(seq, 'server', ',"server":' .. j .. ',"dropped":' .. dropped)
return { seq, j, lost }
