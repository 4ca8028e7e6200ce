-- wrk script of `npm run bench`. With BENCH_POST_BODY set, every request is a POST carrying
-- that body; otherwise wrk sends its GET. BENCH_HEADERS holds the headers of every request,
-- one "name: value" a line (bench/wrk.ts puts a JSON body's content type there too).
-- At the end it prints one line, "BENCH {json}", that bench/wrk.ts reads; answers with a
-- status of 400 or more count as statusErrors.
-- No response() callback: defining one makes wrk parse every response body in Lua.

local body = os.getenv("BENCH_POST_BODY")
if body ~= nil and body ~= "" then
  wrk.method = "POST"
  wrk.body = body
end
for name, value in (os.getenv("BENCH_HEADERS") or ""):gmatch("([^:\n]+): ([^\n]*)") do
  wrk.headers[name] = value
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"durationUs":%d,"p50Us":%d,"p99Us":%d,"maxUs":%d,' ..
      '"socketErrors":%d,"statusErrors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect + e.read + e.write, e.status, e.timeout))
end
