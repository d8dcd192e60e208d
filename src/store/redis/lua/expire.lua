-- ARGV: P, now (ms), placement ids... Releases those still pending past their deadline (their
-- owner died or lost Redis while creating them). Returns { last seq or 0, released JSON... }.
local now = tonumber(ARGV[2])
local out = { 0 }
for i = 3, #ARGV do
  local pid = ARGV[i]
  local h = redis.call('HMGET', k('placement:' .. pid), 's', 'u', 'j', 'd')
  if h[1] and h[4] and tonumber(h[4]) < now then
    local reserved = release_placement(pid, h[1], h[2])
    out[1] = publish_release(pid, h[1], reserved)
    out[#out + 1] = h[3]
  end
end
return out
