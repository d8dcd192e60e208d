-- ARGV: P, mode ("union" | "replace"), generation, expected generation, sequence floor, nServers,
--       server JSON..., placement JSON...
-- Instances write back what they knew when Redis lost data:
--   union:   Redis came back empty (a restart without persistence). Only what is absent is added,
--            so several instances restoring at once converge on the union; the generation key is
--            set only if unset.
--   replace: Redis came back with OLDER data (a dump from before the last writes, a failover that
--            lost writes): its sequence number is below what this instance had applied. The old
--            data is wrong in both directions (removed servers back, live ones gone, closed rooms
--            holding units), so the pool is wiped and rewritten from this instance's view, under
--            a new generation, and the sequence number continues above the floor. Only if the
--            generation is still the expected one and the sequence still below the floor: the
--            first instance to notice replaces, the others then see a new generation and add
--            what they knew on top (union).
-- Reserved units are recomputed from the placements, so nothing is double-booked. Every record is
-- decoded before the first write; one that cannot be decoded is skipped, never half-written.
local mode, gen, expect, floor, n = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local servers, placements, skipped = {}, {}, 0
for i = 7, 6 + n do
  local s = decode(ARGV[i])
  if s and type(s.id) == 'string' and type(s.health) == 'table' then servers[#servers + 1] = s else skipped = skipped + 1 end
end
for i = 7 + n, #ARGV do
  local p = decode(ARGV[i])
  if p and type(p.id) == 'string' and type(p.serverId) == 'string' then placements[#placements + 1] = { p, ARGV[i] } else skipped = skipped + 1 end
end

if mode == 'replace' then
  local cur = tonumber(redis.call('GET', k('seq')) or '0')
  if (redis.call('GET', k('gen')) or '') ~= expect or cur >= floor then return { 0, skipped } end
  for _, id in ipairs(redis.call('SMEMBERS', k('servers'))) do
    for _, pid in ipairs(redis.call('SMEMBERS', k('placements:' .. id))) do redis.call('DEL', k('placement:' .. pid)) end
    redis.call('DEL', k('server:' .. id), k('placements:' .. id), k('lease:' .. id))
  end
  redis.call('DEL', k('servers'), k('reserved'), k('sel'))
  redis.call('SET', k('gen'), gen)
  redis.call('SET', k('seq'), floor)
end

for _, s in ipairs(servers) do
  if redis.call('SISMEMBER', k('servers'), s.id) == 0 then
    redis.call('SADD', k('servers'), s.id)
    redis.call('HSET', k('reserved'), s.id, 0)
    s.reserved = 0
    save_server(s)
  end
end
for _, e in ipairs(placements) do
  local p = e[1]
  local srv = load_server(p.serverId)
  if srv and srv.epoch == p.serverEpoch and redis.call('EXISTS', k('placement:' .. p.id)) == 0 then
    put_placement(p, e[2])
    redis.call('HINCRBY', k('reserved'), p.serverId, p.units)
  end
end
if mode ~= 'replace' then redis.call('SET', k('gen'), gen, 'NX') end
local seq = bump()
publish(seq, 'resync', '')
return { seq, skipped }
