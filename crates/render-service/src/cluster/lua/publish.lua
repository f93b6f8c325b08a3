-- Publish (or re-rank) one front's interest in a metatile job.
-- KEYS[1] queue (zset)   KEYS[2] want:<job> (hash front -> score)
-- KEYS[3] running (zset) KEYS[4] force:<job>  KEYS[5] bell (list)
-- ARGV[1] front id  ARGV[2] job  ARGV[3] score  ARGV[4] "1" to bypass the store
-- The job's queue score is the best (lowest) score any front gives it, so a
-- duplicate from another front merges and can only promote the job.
-- Returns "running" when a render node has the job now (the front waits
-- for its completion), else "queued".
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
if ARGV[4] == '1' then redis.call('SET', KEYS[4], '1') end
if redis.call('ZSCORE', KEYS[3], ARGV[2]) then return 'running' end
local best = best_score(redis.call('HVALS', KEYS[2]))
-- One token per job newly queued wakes one idle render worker (a re-rank
-- wakes nobody); the list is capped, and a spare token only costs a worker
-- one empty claim.
if redis.call('ZADD', KEYS[1], best, ARGV[2]) == 1 then
  redis.call('LPUSH', KEYS[5], '1')
  redis.call('LTRIM', KEYS[5], 0, 255)
end
return 'queued'
