-- The memory benchmark's mix, in a fixed cycle per thread: 1 POST /api/v1/runs (a one-lot, one-sale dry run
-- with a new sale id), 5 GET /api/v1/jobs/{id}, 3 GET /api/v1/runs, 1 GET /health. Targets come from
-- ASORA_WRK_TARGETS (lines "<key> <job id of that key's tenant>"). Each thread stops after ASORA_WRK_REQUESTS
-- answers when that is set.
local common = dofile(os.getenv("ASORA_WRK_DIR") .. "/common.lua")

local targets, tag, limit
local sent = 0
statuses = {}

local MIX = { "post", "job", "runs", "job", "job", "runs", "job", "health", "runs", "job" }
local LOT = '{"lot_id":"L-1","sku":"WIDGET-A","received_date":"2024-07-01T00:00:00Z","original_quantity":"10",'
  .. '"remaining_quantity":"10","unit_price":"10.00","freight_cost_per_unit":"0.50"}'

setup = common.setup

function init(args)
  targets = common.read_fields(os.getenv("ASORA_WRK_TARGETS"))
  tag = os.getenv("ASORA_WRK_TAG") or "m"
  limit = tonumber(os.getenv("ASORA_WRK_REQUESTS") or "0")
end

function request()
  sent = sent + 1
  local target = targets[(sent % #targets) + 1]
  local auth = { ["Authorization"] = "Bearer " .. target[1] }
  local kind = MIX[(sent % #MIX) + 1]
  if kind == "post" then
    auth["Content-Type"] = "application/json"
    local body = string.format(
      '{"dry_run":true,"sales_data":[{"sale_id":"%s-%d-%d","sku":"WIDGET-A","sale_date":"2024-07-05T10:00:00Z",'
        .. '"quantity_sold":"1"}],"lots_data":[%s]}',
      tag, thread_id, sent, LOT)
    return wrk.format("POST", "/api/v1/runs", auth, body)
  elseif kind == "job" then
    return wrk.format("GET", "/api/v1/jobs/" .. target[2], auth)
  elseif kind == "runs" then
    return wrk.format("GET", "/api/v1/runs", auth)
  end
  return wrk.format("GET", "/health")
end

function response(status, headers, body)
  if common.answered(status) == limit then wrk.thread:stop() end
end

function done(summary, latency, requests)
  common.done(summary, latency, {})
end
