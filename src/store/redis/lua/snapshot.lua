-- ARGV: P. The whole pool at one sequence number: { seq, generation, #servers, servers..., placements... }.
local seq = tonumber(redis.call('GET', k('seq')) or '0')
local gen = redis.call('GET', k('gen')) or ''
local out = { seq, gen, 0 }
local ids = redis.call('SMEMBERS', k('servers'))
for _, id in ipairs(ids) do
  local s = load_server(id)
  if s then
    out[#out + 1] = cjson.encode(s)
    out[3] = out[3] + 1
    for _, pid in ipairs(redis.call('SMEMBERS', k('placements:' .. id))) do
      local j = redis.call('HGET', k('placement:' .. pid), 'j')
      if j then out[#out + 1] = j end
    end
  end
end
return out
