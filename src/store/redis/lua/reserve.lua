-- ARGV: P, placement id, units, region ("" = none), placement JSON template, mode, nExclude,
--       excluded ids..., then (mode "ordered") the candidate ids in order of preference.
-- Chooses a server and reserves the units in one atomic step, or returns the existing placement.
-- Mode "most-free" is core/policies/most-free-capacity.ts (with region preference) run here, on
-- the live numbers; mode "ordered" takes the first candidate that is still placeable and fits,
-- and falls back to most-free when none does (the caller's view was stale).
-- An existing placement still pending past its deadline (template.createdAt is now) is reclaimed
-- first: its units are freed and the placement is made anew.
-- The template is kept as the caller built it (its `why` included: nested objects and non-empty
-- arrays survive cjson; callers leave empty ones out, as cjson would turn [] into {}); only
-- serverId and serverEpoch are filled in here.
local pid, units, region, mode = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[6]
local p = decode(ARGV[5])
if not p then return redis.error_reply('reserve: the placement template is not valid JSON') end
local h = redis.call('HMGET', k('placement:' .. pid), 'j', 'd', 's', 'u')
local reclaimed
if h[1] then
  if not (h[2] and tonumber(h[2]) < tonumber(p.createdAt)) then return { 'existing', h[1] } end
  reclaimed = h[1]
end

local nex = tonumber(ARGV[7])
local excluded = {}
for i = 8, 7 + nex do excluded[ARGV[i]] = true end

-- Units the reclaimed placement frees count as free on its server already.
local function fit(id, entry)
  if excluded[id] then return nil end
  local cap, rep, reg, epoch = string.match(entry, '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
  local reserved = tonumber(redis.call('HGET', k('reserved'), id) or '0')
  if reclaimed and id == h[3] then reserved = math.max(0, reserved - tonumber(h[4])) end
  local free = tonumber(cap) - math.max(reserved, tonumber(rep))
  if free < units then return nil end
  return free, reg, epoch
end

local best, bestFree, bestTier, bestEpoch
if mode == 'ordered' then
  for i = 8 + nex, #ARGV do
    local entry = redis.call('HGET', k('sel'), ARGV[i])
    if entry then
      local free, _, epoch = fit(ARGV[i], entry)
      if free then best, bestEpoch = ARGV[i], epoch; break end
    end
  end
end
if not best then
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
end
if not best then
  -- Nothing fits: an expired placement is released all the same (its owner is gone).
  if reclaimed then return { 'none', false, publish_release(pid, h[3], release_placement(pid, h[3], h[4])) } end
  return { 'none' }
end

if reclaimed then publish_release(pid, h[3], release_placement(pid, h[3], h[4])) end
local reserved = redis.call('HINCRBY', k('reserved'), best, units)
p.serverId, p.serverEpoch = best, bestEpoch
local j = cjson.encode(p)
put_placement(p, j)
local seq = bump()
publish(seq, 'reserve', ',"serverId":' .. str(best) .. ',"reserved":' .. reserved .. ',"placement":' .. j)
return { 'reserved', j, seq, reclaimed or false }
