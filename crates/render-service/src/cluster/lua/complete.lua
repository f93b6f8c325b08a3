-- A render node reports a job finished: its tiles are in the shared store
-- (status "done"), or it failed ("failed:<kind>"), or it was stopped
-- ("stopped": nobody wanted it any more, or the node is leaving).
-- KEYS[1] running  KEYS[2] lease:<job>  KEYS[3] want:<job>  KEYS[4] queue
-- KEYS[5] force:<job>
-- ARGV[1] node id  ARGV[2] job  ARGV[3] status  ARGV[4] message
-- ARGV[5] render ms  ARGV[6] stream length cap  ARGV[7] key prefix
-- Every front that wants the job gets one entry on its completion stream;
-- the job's state is then gone, so a second report (a node whose lease ran
-- out finishing late) reaches nobody. Returns the fronts told. The fronts'
-- streams and the counter are named from the prefix, not passed as KEYS:
-- like claim.lua, this needs a single Redis instance (not Redis Cluster).
local holder = redis.call('GET', KEYS[2])
if holder == ARGV[1] then
  redis.call('ZREM', KEYS[1], ARGV[2])
  redis.call('DEL', KEYS[2])
end
if ARGV[3] == 'stopped' then
  if holder == ARGV[1] then
    local vals = redis.call('HVALS', KEYS[3])
    if #vals > 0 then
      redis.call('ZADD', KEYS[4], best_score(vals), ARGV[2])
    end
  end
  return 0
end
local fronts = redis.call('HKEYS', KEYS[3])
for _, front in ipairs(fronts) do
  local stream = ARGV[7] .. 'done:' .. front
  redis.call('XADD', stream, 'MAXLEN', '~', ARGV[6], '*',
    'job', ARGV[2], 'status', ARGV[3], 'message', ARGV[4], 'ms', ARGV[5])
  -- The stream of a front that died (a clean stop deletes its own) goes
  -- a day after its last completion.
  redis.call('EXPIRE', stream, 86400)
end
redis.call('DEL', KEYS[3])
redis.call('DEL', KEYS[5])
redis.call('ZREM', KEYS[4], ARGV[2])
-- If another node took the job after this one's lease ran out, its next
-- renewal finds nobody waiting and it stops.
redis.call('INCR', ARGV[7] .. 'stat:completed')
return #fronts
