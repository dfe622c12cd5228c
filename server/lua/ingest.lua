-- Persist the batches of pings of one or more vehicles, atomically, in one round trip.
-- The server groups the batches that arrive in the same instant into one call
-- (server/scripts.py): the cost of a call is paid once per group, not once per batch.
-- KEYS: 1 lastseen zset, 2 rejects hash, 3 status hash, 4 events log stream,
--       then per vehicle: live hash, track stream, late zset
-- ARGV: 1 cell key prefix, 2 retention floor (ms), 3 ttl (ms), 4 positions channel, 5 now (ms),
--       6 stale after (ms), 7 events channel, 8 number of vehicles m,
--       then per vehicle: its number of values k, then k values:
--         vehicle id, number of pings n, number of reject reasons r,
--         n x 7 values: ts lat lon speed heading accuracy cell ('' = unknown),
--         r x 2 values: reason count
-- Returns, per vehicle, 6 values: accepted, duplicates, published (0/1), live ts, live lat,
-- live lon. Publishes one message on the positions channel: the moved vehicles' positions, one
-- JSON object per line.
local lastseen, rejects, statuses, events_log = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local cell_prefix, floor, ttl, channel = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local now, stale_ms, events = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local m = tonumber(ARGV[8])

local out, positions = {}, {}
local at = 9 -- ARGV index of the current vehicle's value count

for v = 0, m - 1 do
  local live, track, late = KEYS[5 + v * 3], KEYS[6 + v * 3], KEYS[7 + v * 3]
  local k = tonumber(ARGV[at])
  local vid, n, r = ARGV[at + 1], tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  local first = at + 4 -- ARGV index of this vehicle's first ping
  at = at + 1 + k

  local state = redis.call('HMGET', live, 'ts', 'cell', 'lat', 'lon')
  local last_ts = tonumber(state[1]) or -1
  local old_cell = state[2]
  local accepted, duplicates, late_added = 0, 0, false
  local newest = nil -- index into ARGV of the newest ping that moves the live position

  for i = 0, n - 1 do
    local base = first + i * 7
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
    local base = first + n * 7 + j * 2
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
    positions[#positions + 1] = cjson.encode({
      id = vid, ts = last_ts, lat = tonumber(lat), lon = tonumber(lon),
      speed = tonumber(ARGV[newest + 3]), heading = tonumber(ARGV[newest + 4]), cell = cell })
    published = 1
    -- A fresh ping brings a stale or offline vehicle back online at once (the sweeper in
    -- server/tracking/status.py handles the other transitions).
    local previous = redis.call('HGET', statuses, vid)
    if previous ~= 'online' and now - last_ts < stale_ms then
      redis.call('HSET', statuses, vid, 'online')
      local event = cjson.encode({ type = 'status', vehicle_id = vid, status = 'online',
        previous = previous or cjson.null, at = now })
      redis.call('PUBLISH', events, event)
      redis.call('XADD', events_log, 'MAXLEN', '~', 10000, '*', 'e', event)
    end
  end

  local o = #out
  out[o + 1], out[o + 2], out[o + 3] = accepted, duplicates, published
  out[o + 4], out[o + 5], out[o + 6] = tostring(last_ts), lat or '', lon or ''
end

if #positions > 0 then
  redis.call('PUBLISH', channel, table.concat(positions, '\n'))
end

return out
