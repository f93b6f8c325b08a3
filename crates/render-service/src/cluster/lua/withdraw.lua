-- Withdraw one front's interest in a job (its clients cancelled or left).
-- KEYS[1] queue  KEYS[2] want:<job>  KEYS[3] force:<job>
-- ARGV[1] front id  ARGV[2] job
-- A queued job nobody else wants leaves the queue; a running one is left to
-- its render node, whose next lease renewal finds nobody waiting and stops.
-- Returns how many fronts still want the job.
redis.call('HDEL', KEYS[2], ARGV[1])
local vals = redis.call('HVALS', KEYS[2])
if #vals == 0 then
  redis.call('ZREM', KEYS[1], ARGV[2])
  redis.call('DEL', KEYS[3])
  return 0
end
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  redis.call('ZADD', KEYS[1], best_score(vals), ARGV[2])
end
return #vals
