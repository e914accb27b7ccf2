-- POST /api/v1/runs: a one-lot, one-sale JSON dry run per request, as a tenant's owner key chosen at random
-- from ASORA_WRK_KEYS (lines "<tenant id> <key>"). Every sale id is new: <tag>-<thread>-<n>-<answers seen>,
-- where "answers seen" is how many answers this thread had received when it wrote the request, which the
-- acceptance-order check reads back from the database (tests/benchmarks/harness.py). Stops each thread after
-- ASORA_WRK_REQUESTS answers when that is set.
local common = dofile(os.getenv("ASORA_WRK_DIR") .. "/common.lua")

local keys, tag, limit
local sent, seen = 0, 0
statuses = {}
answers = {} -- job ids in the order their answers arrived ("" for an answer other than 202)

local LOT = '{"lot_id":"L-1","sku":"WIDGET-A","received_date":"2024-07-01T00:00:00Z","original_quantity":"10",'
  .. '"remaining_quantity":"10","unit_price":"10.00","freight_cost_per_unit":"0.50"}'

setup = common.setup

function init(args)
  keys = common.read_fields(os.getenv("ASORA_WRK_KEYS"))
  tag = os.getenv("ASORA_WRK_TAG") or "w"
  limit = tonumber(os.getenv("ASORA_WRK_REQUESTS") or "0")
  math.randomseed(thread_id * 7919 + os.time())
end

function request()
  sent = sent + 1
  local key = keys[math.random(#keys)][2]
  local body = string.format(
    '{"dry_run":true,"sales_data":[{"sale_id":"%s-%d-%d-%d","sku":"WIDGET-A","sale_date":"2024-07-05T10:00:00Z",'
      .. '"quantity_sold":"1"}],"lots_data":[%s]}',
    tag, thread_id, sent, seen, LOT)
  return wrk.format("POST", "/api/v1/runs", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. key,
  }, body)
end

function response(status, headers, body)
  seen = common.answered(status)
  answers[seen] = status == 202 and (body:match('"job_id"%s*:%s*"([^"]+)"') or "") or ""
  if limit > 0 and seen >= limit then wrk.thread:stop() end
end

function done(summary, latency, requests)
  common.done(summary, latency, { "answers" })
end
