-- post.lua: wrk script for the accept-rate benchmark. Every request POSTs an
-- envelope; every answer that is not 202 is counted, per thread, and the
-- total is printed as JSON by done() so run.sh can check it is zero.
local token = os.getenv("SLUICE_BENCH_TOKEN") or "bench-token"
local route = os.getenv("SLUICE_BENCH_ROUTE") or "echo"
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non202 = 0
  wrk.method = "POST"
  wrk.path = "/v1/requests"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. token
  wrk.body = '{"route":"' .. route .. '","path":"/orders","body":{"sku":"A-1","qty":2}}'
end

function response(status, headers, body)
  if status ~= 202 then
    non202 = non202 + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("non202")
  end
  io.write(string.format(
    '{"requests":%d,"seconds":%.3f,"rate":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,' ..
    '"non_202":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    bad + summary.errors.status, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
end
