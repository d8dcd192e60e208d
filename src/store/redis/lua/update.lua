-- ARGV: P, server id, op, op arguments. One change to one server record:
--   heartbeat <now> <load JSON or "">  |  admin <state>  |  health <epoch> <health JSON>
local id, op = ARGV[2], ARGV[3]
local s = load_server(id)
if not s then return { 0 } end
if op == 'heartbeat' then
  s.lastHeartbeat = tonumber(ARGV[4])
  if ARGV[5] ~= '' then s.reported = cjson.decode(ARGV[5]) end
elseif op == 'admin' then
  s.adminState = ARGV[4]
elseif op == 'health' then
  if s.epoch ~= ARGV[4] then return { 0 } end
  s.health = cjson.decode(ARGV[5])
else
  return redis.error_reply('unknown update op ' .. tostring(op))
end
s.rev = s.rev + 1
save_server(s)
local j = cjson.encode(s)
local seq = bump()
publish(seq, 'server', ',"server":' .. j .. ',"dropped":[]')
return { seq, j }
