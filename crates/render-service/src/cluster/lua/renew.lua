-- A render node extends its lease on a job it is drawing.
-- KEYS[1] running  KEYS[2] lease:<job>  KEYS[3] want:<job>
-- ARGV[1] node id  ARGV[2] job  ARGV[3] lease (ms)
-- Returns 1 to go on, 0 to stop: the lease is no longer this node's (it ran
-- out and the job went back to the queue), or nobody wants the job now.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[3]) == 0 then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now_ms() + tonumber(ARGV[3]), ARGV[2])
return 1
