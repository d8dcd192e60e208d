-- ARGV: P, server id. Removes the server and releases its placements.
local id = ARGV[2]
local s = load_server(id)
if not s then return { 0 } end
local lost, dropped = drop_placements(id)
s.reserved = 0
redis.call('DEL', k('server:' .. id), k('lease:' .. id))
redis.call('HDEL', k('reserved'), id)
redis.call('HDEL', k('sel'), id)
redis.call('SREM', k('servers'), id)
local seq = bump()
publish(seq, 'server-removed', ',"id":' .. str(id) .. ',"dropped":' .. dropped)
return { seq, cjson.encode(s), lost }
