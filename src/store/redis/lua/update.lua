-- ARGV: P, server id, op, op arguments. One change to one server record:
--   heartbeat <now> <load JSON or "">  |  admin <state> [expected state]  |  health <epoch> <health JSON>
--   | patch <{weight?, capacity?, attributes?} JSON> (attributes merged key by key)
-- JSON arguments are decoded before anything is written.
local id, op = ARGV[2], ARGV[3]
local arg
if (op == 'heartbeat' and ARGV[5] ~= '') or op == 'health' or op == 'patch' then
  arg = decode(op == 'patch' and ARGV[4] or ARGV[5])
  if not arg then return redis.error_reply('update ' .. op .. ': the argument is not valid JSON') end
end
local s = load_server(id)
if not s then return { 0 } end
if op == 'heartbeat' then
  s.lastHeartbeat = tonumber(ARGV[4])
  if arg then s.reported = arg end
elseif op == 'admin' then
  -- ARGV[5]: the state the writer expects now ("" = any); otherwise nothing changes.
  if ARGV[5] and ARGV[5] ~= '' and s.adminState ~= ARGV[5] then return { 0 } end
  s.adminState = ARGV[4]
elseif op == 'health' then
  if s.epoch ~= ARGV[4] then return { 0 } end
  s.health = arg
elseif op == 'patch' then
  if type(arg.weight) == 'number' then s.weight = arg.weight end
  if type(arg.capacity) == 'number' then s.capacity = arg.capacity end
  if type(arg.attributes) == 'table' then
    if type(s.attributes) ~= 'table' then s.attributes = {} end
    for key, value in pairs(arg.attributes) do
      if type(key) == 'string' and value ~= cjson.null then s.attributes[key] = value end
    end
  end
else
  return redis.error_reply('unknown update op ' .. tostring(op))
end
s.rev = s.rev + 1
save_server(s)
local j = cjson.encode(s)
local seq = bump()
publish(seq, 'server', ',"server":' .. j .. ',"dropped":[]')
return { seq, j }
