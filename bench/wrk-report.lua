-- wrk script of `npm run bench`. With BENCH_POST_BODY set, every request is a Connect JSON
-- call (POST, content-type application/json) carrying that body; otherwise wrk sends its GET.
-- At the end it prints one line, "BENCH {json}", that bench/wrk.ts reads; answers with a
-- status of 400 or more count as statusErrors.
-- No response() callback: defining one makes wrk parse every response body in Lua.

local body = os.getenv("BENCH_POST_BODY")
if body ~= nil and body ~= "" then
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"durationUs":%d,"p50Us":%d,"p99Us":%d,"maxUs":%d,' ..
      '"socketErrors":%d,"statusErrors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect + e.read + e.write, e.status, e.timeout))
end
