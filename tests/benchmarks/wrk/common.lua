-- Shared by the benchmark scripts: reading key files, counting answers per thread (the globals `statuses`
-- and `answered`), and the done() report
-- (JSON, written to the file named by ASORA_WRK_REPORT, read by tests/benchmarks/harness.py).
local common = {}

-- Lines of a file, each split on spaces into fields.
function common.read_fields(path)
  local rows = {}
  for line in io.lines(path) do
    if line ~= "" then
      local fields = {}
      for field in line:gmatch("%S+") do fields[#fields + 1] = field end
      rows[#rows + 1] = fields
    end
  end
  return rows
end

local function encode(value)
  local kind = type(value)
  if kind == "number" then
    return string.format("%.17g", value)
  elseif kind == "string" then
    return '"' .. value:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
  elseif kind == "boolean" then
    return tostring(value)
  elseif kind == "table" then
    if #value > 0 or next(value) == nil then
      local parts = {}
      for i = 1, #value do parts[i] = encode(value[i]) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local parts = {}
    for k, v in pairs(value) do parts[#parts + 1] = encode(tostring(k)) .. ":" .. encode(v) end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return "null"
end
common.encode = encode

-- setup() for every script: number the threads (the id is a global in the thread's own Lua state).
common.threads = {}
function common.setup(thread)
  thread:set("thread_id", #common.threads + 1)
  common.threads[#common.threads + 1] = thread
end

-- Counting answers: every 100th is written to ASORA_WRK_PROGRESS.<thread>, which the harness watches.
function common.answered(status)
  answered = (answered or 0) + 1
  statuses[tostring(status)] = (statuses[tostring(status)] or 0) + 1
  if answered % 100 == 0 then
    local out = io.open(os.getenv("ASORA_WRK_PROGRESS") .. "." .. thread_id, "w")
    if out then
      out:write(tostring(answered))
      out:close()
    end
  end
  return answered
end

-- The report: wrk's totals and latency percentiles, the statuses counted by response(), and per thread the
-- values named in `per_thread` (copied out of the thread's state).
function common.done(summary, latency, per_thread)
  local statuses = {}
  local threads = {}
  for _, thread in ipairs(common.threads) do
    for status, n in pairs(thread:get("statuses") or {}) do
      statuses[status] = (statuses[status] or 0) + n
    end
    local entry = { id = thread:get("thread_id") }
    for _, name in ipairs(per_thread or {}) do entry[name] = thread:get(name) or {} end
    threads[#threads + 1] = entry
  end
  local report = {
    duration_us = summary.duration,
    requests = summary.requests,
    errors = summary.errors,
    statuses = statuses,
    latency_us = {
      p50 = latency:percentile(50),
      p90 = latency:percentile(90),
      p99 = latency:percentile(99),
      max = latency.max,
      mean = latency.mean,
    },
    threads = threads,
  }
  local out = assert(io.open(os.getenv("ASORA_WRK_REPORT"), "w"))
  out:write(encode(report))
  out:close()
end

return common
