-- The live positions of a page of vehicles in one call: HMGET ARGV (the fields) of each key in
-- KEYS (live hashes), in order. One command instead of one per vehicle: redis-py's work per
-- pipelined command cost the server ~30 µs a vehicle; this costs it ~3 and Redis ~4.
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('HMGET', key, unpack(ARGV))
end
return out
