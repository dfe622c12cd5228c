-- Persist the batches of pings of one or more vehicles, atomically, in one round trip.
-- The server groups the batches that arrive in the same instant into one call
-- (server/scripts.py): the cost of a call is paid once per group, not once per batch.
-- Redis spends most of a call's time crossing from Lua to its commands, so the script makes
-- as few calls as it can: the statuses are read, and the last-seen times written, once per
-- group; a batch's in-order pings are one stream entry; the track's expiry is renewed once a
-- minute; the position published is encoded by the server.
-- KEYS: 1 lastseen zset, 2 rejects hash, 3 status hash, 4 events log stream,
--       then per vehicle: live hash, track stream, late zset
-- ARGV: 1 cell key prefix, 2 retention floor (ms), 3 ttl (ms), 4 positions channel, 5 now (ms),
--       6 stale after (ms), 7 events channel, 8 number of vehicles m,
--       then per vehicle: its number of values k, then k values:
--         vehicle id, number of pings n, number of reject reasons r,
--         the newest ping's ts lat lon speed heading accuracy cell ('' = unknown) and its
--         position as published (a JSON object),
--         the n pings in timestamp order (no two alike), each packed as
--         'ts,lat,lon,speed,heading,accuracy', joined by ';' (one value),
--         r x 2 values: reason count
-- Returns, per vehicle, 6 values: accepted, duplicates, published (0/1), live ts, live lat,
-- live lon. Publishes one message on the positions channel: the moved vehicles' positions, one
-- JSON object per line.
local lastseen, rejects, statuses, events_log = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local cell_prefix, floor, ttl, channel = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local now, stale_ms, events = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local m = tonumber(ARGV[8])
local MINUTE = 60000

-- Every vehicle's status, in one call.
local vids = {}
do
  local at = 9
  for v = 1, m do
    vids[v] = ARGV[at + 1]
    at = at + 1 + tonumber(ARGV[at])
  end
end
local status = redis.call('HMGET', statuses, unpack(vids))

-- Whether the ping at ts (older than the live position) is stored already: in the track entry
-- that would hold it, or among the late ones.
local function stored(track, late, ts)
  local entry = redis.call('XREVRANGE', track, ts, '-', 'COUNT', 1)[1]
  if entry ~= nil then
    local fields = entry[2]
    for f = 1, #fields, 2 do
      if fields[f] == 'b' then
        if string.find(';' .. fields[f + 1], ';' .. ts .. ',', 1, true) then return true end
      elseif fields[f] == 'p' and string.match(entry[1], '^%d+') == ts then
        return true -- an entry of one ping, as written before batches were one entry
      end
    end
  end
  return #redis.call('ZRANGE', late, ts, ts, 'BYSCORE', 'LIMIT', 0, 1) > 0
end

-- The newest ping in the track (-1 if none): what the live hash says, when it has been lost.
local function newest_stored(track)
  local entry = redis.call('XREVRANGE', track, '+', '-', 'COUNT', 1)[1]
  if entry == nil then return -1 end
  local fields = entry[2]
  for f = 1, #fields, 2 do
    if fields[f] == 'b' then
      return tonumber(string.match(fields[f + 1], '(%d+),[^;]*$'))
    end
  end
  return tonumber(string.match(entry[1], '^%d+'))
end

local out, positions, seen, online = {}, {}, {}, {}
local at = 9 -- ARGV index of the current vehicle's value count

for v = 0, m - 1 do
  local live, track, late = KEYS[5 + v * 3], KEYS[6 + v * 3], KEYS[7 + v * 3]
  local k = tonumber(ARGV[at])
  local vid, n, r = ARGV[at + 1], tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  local newest = at + 4 -- ARGV index of the newest ping's ts
  local joined = ARGV[at + 12] -- the pings
  local first_reason = at + 13
  at = at + 1 + k

  local state = redis.call('HMGET', live, 'ts', 'cell', 'lat', 'lon')
  local last_ts = tonumber(state[1]) or newest_stored(track)
  local old_ts, old_cell = last_ts, state[2]
  local accepted, duplicates, late_added = 0, 0, false
  local batch, batch_id = nil, nil

  if n > 0 then
    local first_id = string.match(joined, '^%d+')
    if tonumber(first_id) > last_ts then
      -- The common case: every ping is newer than the live position. They come in order, so
      -- they are the track's next entry as they are, without a look at each.
      batch, batch_id, accepted = joined, first_id, n
      last_ts = tonumber(ARGV[newest])
    else
      local newer = {}
      for packed in string.gmatch(joined, '[^;]+') do
        local id = string.match(packed, '^%d+')
        local ts = tonumber(id)
        if ts > last_ts then
          newer[#newer + 1] = packed
          batch_id = batch_id or id
          last_ts = ts
          accepted = accepted + 1
        elseif ts == last_ts or stored(track, late, id) then
          duplicates = duplicates + 1
        else
          -- Older than the live position: history only, never moves the vehicle backwards.
          redis.call('ZADD', late, ts, packed)
          late_added = true
          accepted = accepted + 1
        end
      end
      batch = table.concat(newer, ';')
    end
  end

  for j = 0, r - 1 do
    local base = first_reason + j * 2
    redis.call('HINCRBY', rejects, ARGV[base], ARGV[base + 1])
  end

  if late_added then
    redis.call('ZREMRANGEBYSCORE', late, '-inf', '(' .. floor)
    redis.call('PEXPIRE', late, ttl)
  end

  local published = 0
  local lat, lon = state[3], state[4]
  if batch_id ~= nil then
    -- The newest ping is the last in order: it is the new live position.
    redis.call('XADD', track, 'MINID', '~', floor, batch_id .. '-*', 'b', batch)
    if math.floor(old_ts / MINUTE) ~= math.floor(last_ts / MINUTE) then
      redis.call('PEXPIRE', track, ttl + MINUTE)
    end
    local cell = ARGV[newest + 6]
    lat, lon = ARGV[newest + 1], ARGV[newest + 2]
    redis.call('HSET', live, 'ts', ARGV[newest], 'lat', lat, 'lon', lon,
      'speed', ARGV[newest + 3], 'heading', ARGV[newest + 4], 'accuracy', ARGV[newest + 5],
      'cell', cell)
    if old_cell ~= cell then
      if old_cell then redis.call('SREM', cell_prefix .. old_cell, vid) end
      redis.call('SADD', cell_prefix .. cell, vid)
    end
    seen[#seen + 1] = last_ts
    seen[#seen + 1] = vid
    positions[#positions + 1] = ARGV[newest + 7]
    published = 1
    -- A fresh ping brings a stale or offline vehicle back online at once (the sweeper in
    -- server/tracking/status.py handles the other transitions).
    local previous = status[v + 1]
    if previous ~= 'online' and not online[vid] and now - last_ts < stale_ms then
      online[vid] = true
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

if #seen > 0 then
  redis.call('ZADD', lastseen, unpack(seen))
end
if #positions > 0 then
  redis.call('PUBLISH', channel, table.concat(positions, '\n'))
end

return out
