-- ARGV: P. The whole pool at one sequence number:
-- { seq, generation, #servers, servers..., placements... }.
local seq = tonumber(redis.call('GET', k('seq')) or '0')
local gen = redis.call('GET', k('gen')) or ''
local out, placements = { seq, gen, 0 }, {}
for _, id in ipairs(redis.call('SMEMBERS', k('servers'))) do
  local s = load_server(id)
  if s then
    out[#out + 1] = cjson.encode(s)
    out[3] = out[3] + 1
    for _, pid in ipairs(redis.call('SMEMBERS', k('placements:' .. id))) do
      local j = redis.call('HGET', k('placement:' .. pid), 'j')
      if j then placements[#placements + 1] = j end
    end
  end
end
for _, j in ipairs(placements) do out[#out + 1] = j end
return out
