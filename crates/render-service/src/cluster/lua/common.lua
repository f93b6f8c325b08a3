-- Shared by every script: tessera prepends this file to each one before
-- loading it (Redis scripts cannot call each other).

-- The best (lowest) score among the fronts' scores of a job's want hash:
-- the queue keeps the most urgent wish. nil when nobody wants the job.
local function best_score(scores)
  local best = nil
  for _, v in ipairs(scores) do
    local n = tonumber(v)
    if best == nil or n < best then best = n end
  end
  return best
end

-- Redis's clock in milliseconds (leases are judged by the engine's clock,
-- so the machines' clocks need not agree).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
