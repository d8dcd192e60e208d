-- Shared by every script (prepended at load time). ARGV[1] is the pool's key prefix, e.g.
-- "sb:{rooms}": every key below carries the pool's hash tag, so each script runs in one Cluster slot.
-- KEYS[1] is P..":seq", declared so clients route the script to the slot's node.
local P = ARGV[1]
local function k(s) return P .. ':' .. s end

-- Every change bumps the pool's sequence number; events carry it so that caches apply them in
-- order and notice a gap (a missed message) and reload.
local function bump() return redis.call('INCR', k('seq')) end
local function publish(seq, t, body)
  redis.call('PUBLISH', k('events'), '{"seq":' .. seq .. ',"t":"' .. t .. '"' .. body .. '}')
end
local function str(s) return cjson.encode(s) end

-- Decodes JSON given to a script, or nil. Scripts decode (and so validate) every argument before
-- their first write: cjson refuses input Node accepts (e.g. a lone UTF-16 surrogate escape), and
-- a script that fails half-way would leave half a change behind.
local function decode(j)
  local ok, v = pcall(cjson.decode, j)
  if ok and type(v) == 'table' then return v end
  return nil
end

-- A server record is JSON at server:<id>; its reserved units live in the `reserved` hash (so a
-- reservation is one HINCRBY), and active + healthy servers have an entry in the `sel` hash,
-- "capacity|reportedUnits|region|epoch", which is all that selection reads.
local function load_server(id)
  local j = redis.call('GET', k('server:' .. id))
  if not j then return nil end
  local s = cjson.decode(j)
  s.reserved = tonumber(redis.call('HGET', k('reserved'), id) or '0')
  return s
end

local function save_server(s)
  local reserved = s.reserved
  s.reserved = 0
  redis.call('SET', k('server:' .. s.id), cjson.encode(s))
  s.reserved = reserved
  if s.adminState == 'active' and s.health.status == 'healthy' then
    local rep = 0
    if type(s.reported) == 'table' and type(s.reported.units) == 'number' then rep = s.reported.units end
    redis.call('HSET', k('sel'), s.id, s.capacity .. '|' .. rep .. '|' .. (s.region or '') .. '|' .. s.epoch)
  else
    redis.call('HDEL', k('sel'), s.id)
  end
end

-- Releases every placement of a server; returns their JSON and a JSON array of their ids.
local function drop_placements(id)
  local ids = redis.call('SMEMBERS', k('placements:' .. id))
  local lost, quoted = {}, {}
  for i, pid in ipairs(ids) do
    lost[i] = redis.call('HGET', k('placement:' .. pid), 'j')
    quoted[i] = str(pid)
    redis.call('DEL', k('placement:' .. pid))
  end
  redis.call('DEL', k('placements:' .. id))
  if redis.call('SISMEMBER', k('servers'), id) == 1 then redis.call('HSET', k('reserved'), id, 0) end
  return lost, '[' .. table.concat(quoted, ',') .. ']'
end

-- A placement is a hash at placement:<pid>: s = server id, u = units, j = JSON, a = attempt (the
-- reservation's identity), d = deadline (ms; only while pending). Releasing one frees its units;
-- returns the server's reserved units after it.
local function release_placement(pid, sid, units)
  redis.call('DEL', k('placement:' .. pid))
  redis.call('SREM', k('placements:' .. sid), pid)
  local reserved = 0
  if redis.call('SISMEMBER', k('servers'), sid) == 1 then
    reserved = redis.call('HINCRBY', k('reserved'), sid, -tonumber(units))
    if reserved < 0 then
      reserved = 0
      redis.call('HSET', k('reserved'), sid, 0)
    end
  end
  return reserved
end

local function publish_release(pid, sid, reserved)
  local seq = bump()
  publish(seq, 'release', ',"id":' .. str(pid) .. ',"serverId":' .. str(sid) .. ',"reserved":' .. reserved)
  return seq
end

-- Writes a placement record (p decoded, j its JSON).
local function put_placement(p, j)
  redis.call('HSET', k('placement:' .. p.id), 's', p.serverId, 'u', p.units, 'j', j, 'a', p.attempt or '')
  if p.state == 'pending' and type(p.deadline) == 'number' then
    redis.call('HSET', k('placement:' .. p.id), 'd', p.deadline)
  end
  redis.call('SADD', k('placements:' .. p.serverId), p.id)
end
