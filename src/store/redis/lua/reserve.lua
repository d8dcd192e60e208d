-- ARGV: P, placement id, units, region ("" = none), placement JSON template, mode, nExclude,
--       excluded ids..., then (mode "ordered") the candidate ids in order of preference.
-- Chooses a server and reserves the units in one atomic step, or returns the existing placement.
-- Mode "most-free" is core/policies/most-free-capacity.ts (with region preference) run here, on
-- the live numbers; mode "ordered" takes the first candidate that is still placeable and fits.
local pid, units, region, mode = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[6]
local existing = redis.call('HGET', k('placement:' .. pid), 'j')
if existing then return { 'existing', existing } end

local nex = tonumber(ARGV[7])
local excluded = {}
for i = 8, 7 + nex do excluded[ARGV[i]] = true end

local function fit(id, entry)
  if excluded[id] then return nil end
  local cap, rep, reg, epoch = string.match(entry, '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
  local reserved = tonumber(redis.call('HGET', k('reserved'), id) or '0')
  local free = tonumber(cap) - math.max(reserved, tonumber(rep))
  if free < units then return nil end
  return free, reg, epoch
end

local best, bestFree, bestTier, bestEpoch
if mode == 'most-free' then
  local sel = redis.call('HGETALL', k('sel'))
  for i = 1, #sel, 2 do
    local free, reg, epoch = fit(sel[i], sel[i + 1])
    if free then
      local tier = 1
      if region ~= '' and reg == region then tier = 0 end
      if best == nil or tier < bestTier or (tier == bestTier and free > bestFree) then
        best, bestFree, bestTier, bestEpoch = sel[i], free, tier, epoch
      end
    end
  end
else
  for i = 8 + nex, #ARGV do
    local entry = redis.call('HGET', k('sel'), ARGV[i])
    if entry then
      local free, _, epoch = fit(ARGV[i], entry)
      if free then best, bestEpoch = ARGV[i], epoch; break end
    end
  end
end
if not best then return { 'none' } end

local reserved = redis.call('HINCRBY', k('reserved'), best, units)
local p = cjson.decode(ARGV[5])
p.serverId, p.serverEpoch = best, bestEpoch
local j = cjson.encode(p)
redis.call('HSET', k('placement:' .. pid), 's', best, 'u', units, 'j', j)
redis.call('SADD', k('placements:' .. best), pid)
local seq = bump()
publish(seq, 'reserve', ',"serverId":' .. str(best) .. ',"reserved":' .. reserved .. ',"placement":' .. j)
return { 'reserved', j, seq }
