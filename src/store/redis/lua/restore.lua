-- ARGV: P, generation, nServers, server JSON..., placement JSON...
-- After Redis lost its data (a restart without persistence), instances write back what they
-- knew. Only what is absent is added, so several instances restoring at once converge on the
-- union; reserved units are recomputed from the placements, so nothing is double-booked.
local gen, n = ARGV[2], tonumber(ARGV[3])
for i = 4, 3 + n do
  local s = cjson.decode(ARGV[i])
  if redis.call('SISMEMBER', k('servers'), s.id) == 0 then
    redis.call('SADD', k('servers'), s.id)
    redis.call('HSET', k('reserved'), s.id, 0)
    s.reserved = 0
    save_server(s)
  end
end
for i = 4 + n, #ARGV do
  local p = cjson.decode(ARGV[i])
  local srv = load_server(p.serverId)
  if srv and srv.epoch == p.serverEpoch and redis.call('EXISTS', k('placement:' .. p.id)) == 0 then
    redis.call('HSET', k('placement:' .. p.id), 's', p.serverId, 'u', p.units, 'j', ARGV[i])
    redis.call('SADD', k('placements:' .. p.serverId), p.id)
    redis.call('HINCRBY', k('reserved'), p.serverId, p.units)
  end
end
redis.call('SET', k('gen'), gen, 'NX')
local seq = bump()
publish(seq, 'resync', '')
return seq
