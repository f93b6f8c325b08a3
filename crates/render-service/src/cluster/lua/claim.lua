-- A render node's worker takes the most urgent job it can render.
-- KEYS[1] running (zset job -> lease deadline, ms)
-- KEYS[2..] the queues of the maps and style versions this node has
-- ARGV[1] node id  ARGV[2] lease (ms)  ARGV[3] key prefix
-- First, jobs whose lease ran out (their node died or hung) go back to
-- their queue at their best wanted score, or are dropped if nobody wants
-- them any more. Keys of expired jobs are derived from the prefix, so this
-- script needs a single Redis instance (not Redis Cluster).
-- Returns {job, force} or nil when nothing is queued for this node.
local now = now_ms()
local prefix = ARGV[3]
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 64)
for _, job in ipairs(expired) do
  redis.call('ZREM', KEYS[1], job)
  redis.call('DEL', prefix .. 'lease:' .. job)
  local vals = redis.call('HVALS', prefix .. 'want:' .. job)
  if #vals > 0 then
    local best = best_score(vals)
    local queue = prefix .. 'q:' .. string.match(job, '^[^/]+')
    redis.call('ZADD', queue, best, job)
    redis.call('INCR', prefix .. 'stat:requeued')
  end
end
local pick_queue, pick_job, pick_score = nil, nil, nil
for i = 2, #KEYS do
  local head = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
  if head[1] and (pick_score == nil or tonumber(head[2]) < pick_score) then
    pick_queue, pick_job, pick_score = KEYS[i], head[1], tonumber(head[2])
  end
end
if pick_job == nil then return nil end
redis.call('ZREM', pick_queue, pick_job)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), pick_job)
redis.call('SET', prefix .. 'lease:' .. pick_job, ARGV[1])
local force = redis.call('EXISTS', prefix .. 'force:' .. pick_job)
return {pick_job, tostring(force)}
