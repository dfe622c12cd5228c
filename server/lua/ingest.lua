-- Persist one batch of pings of one vehicle, atomically, in one round trip.
-- KEYS: 1 live hash, 2 track stream, 3 late zset, 4 lastseen zset, 5 rejects hash,
--       6 status hash, 7 events log stream
-- ARGV: 1 vehicle id, 2 cell key prefix, 3 retention floor (ms), 4 ttl (ms), 5 channel,
--       6 number of pings n, 7 number of reject reasons r, 8 now (ms), 9 stale after (ms),
--       10 events channel,
--       then n x 7 values: ts lat lon speed heading accuracy cell ('' = unknown),
--       then r x 2 values: reason count
-- Returns: {accepted, duplicates, published (0/1), live ts, live lat, live lon} (strings)
local live, track, late, lastseen, rejects = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local vid, cell_prefix = ARGV[1], ARGV[2]
local floor, ttl, channel = ARGV[3], tonumber(ARGV[4]), ARGV[5]
local n, r = tonumber(ARGV[6]), tonumber(ARGV[7])
local now, stale_ms, events = tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10]
local FIRST = 11 -- ARGV index of the first ping

local state = redis.call('HMGET', live, 'ts', 'cell', 'lat', 'lon')
local last_ts = tonumber(state[1]) or -1
local old_cell = state[2]
local accepted, duplicates, late_added = 0, 0, false
local newest = nil -- index into ARGV of the newest ping that moves the live position

for i = 0, n - 1 do
  local base = FIRST + i * 7
  local ts = tonumber(ARGV[base])
  local packed = ARGV[base + 1] .. ',' .. ARGV[base + 2] .. ',' .. ARGV[base + 3] .. ','
      .. ARGV[base + 4] .. ',' .. ARGV[base + 5]
  if ts > last_ts then
    redis.call('XADD', track, 'MINID', '~', floor, ARGV[base] .. '-*', 'p', packed)
    last_ts = ts
    newest = base
    accepted = accepted + 1
  elseif ts == last_ts then
    duplicates = duplicates + 1
  elseif #redis.call('XRANGE', track, ARGV[base], ARGV[base], 'COUNT', 1) > 0
      or #redis.call('ZRANGE', late, ts, ts, 'BYSCORE', 'LIMIT', 0, 1) > 0 then
    duplicates = duplicates + 1
  else
    -- Older than the live position: history only, never moves the vehicle backwards.
    redis.call('ZADD', late, ts, ARGV[base] .. ',' .. packed)
    late_added = true
    accepted = accepted + 1
  end
end

for j = 0, r - 1 do
  local base = FIRST + n * 7 + j * 2
  redis.call('HINCRBY', rejects, ARGV[base], ARGV[base + 1])
end

if late_added then
  redis.call('ZREMRANGEBYSCORE', late, '-inf', '(' .. floor)
  redis.call('PEXPIRE', late, ttl)
end

local published = 0
local lat, lon = state[3], state[4]
if newest ~= nil then
  local cell = ARGV[newest + 6]
  lat, lon = ARGV[newest + 1], ARGV[newest + 2]
  redis.call('HSET', live, 'ts', ARGV[newest], 'lat', lat, 'lon', lon,
    'speed', ARGV[newest + 3], 'heading', ARGV[newest + 4], 'accuracy', ARGV[newest + 5],
    'cell', cell)
  if old_cell ~= cell then
    if old_cell then redis.call('SREM', cell_prefix .. old_cell, vid) end
    redis.call('SADD', cell_prefix .. cell, vid)
  end
  redis.call('ZADD', lastseen, last_ts, vid)
  redis.call('PEXPIRE', track, ttl)
  redis.call('PUBLISH', channel, cjson.encode({
    id = vid, ts = last_ts, lat = tonumber(lat), lon = tonumber(lon),
    speed = tonumber(ARGV[newest + 3]), heading = tonumber(ARGV[newest + 4]), cell = cell }))
  published = 1
  -- A fresh ping brings a stale or offline vehicle back online at once (the sweeper in
  -- server/tracking/status.py handles the other transitions).
  local previous = redis.call('HGET', KEYS[6], vid)
  if previous ~= 'online' and now - last_ts < stale_ms then
    redis.call('HSET', KEYS[6], vid, 'online')
    local event = cjson.encode({ type = 'status', vehicle_id = vid, status = 'online',
      previous = previous or cjson.null, at = now })
    redis.call('PUBLISH', events, event)
    redis.call('XADD', KEYS[7], 'MAXLEN', '~', 10000, '*', 'e', event)
  end
end

return {accepted, duplicates, published, tostring(last_ts), lat or '', lon or ''}
