-- wrk script for bench/collector.py: POST /collect with pre-built 10-event bodies.
-- Args (after --): bodies file (one JSON body per line), API key.
-- Env BENCH_DELAY_MS: pause between requests on a connection (paced run); unset = flat out.

local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if pause > 0 then
  function delay() return pause end
end

local reqs, n, i = {}, 0, 0

function init(args)
  local headers = {["Content-Type"] = "application/json", ["X-API-Key"] = args[2]}
  for line in io.lines(args[1]) do
    n = n + 1
    reqs[n] = wrk.format("POST", "/collect", headers, line)
  end
  i = math.random(n)
end

function request()
  i = i % n + 1
  return reqs[i]
end

function done(summary, latency, _)
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, ' ..
    '"p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
