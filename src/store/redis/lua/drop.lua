-- ARGV: P, server id, epoch. Releases every placement of that registration of the server.
local id = ARGV[2]
local s = load_server(id)
if not s or s.epoch ~= ARGV[3] then return { 0 } end
local lost, dropped = drop_placements(id)
local seq = bump()
publish(seq, 'drop', ',"serverId":' .. str(id) .. ',"dropped":' .. dropped)
return { seq, lost }
