-- wrk script for the single-record ingest benchmark.
--   wrk -t2 -c50 -d10s --latency -s ingest.lua http://127.0.0.1:PORT -- PATH TOKEN TIMESTAMP
-- Cycles through 1,000 pre-built POST requests (different visitor IPs, pages and user agents)
-- to PATH, so the same bytes go to Footfall's /api/ingest/server/pageview and to /bare.
-- done() prints one line "WRKJSON {...}" for the runner to parse.

local requests = {}
local count = 0
local index = 0

local agents = {
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
  "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
}

function init(args)
  local path, token, timestamp = args[1], args[2], args[3]
  for k = 0, 999 do
    local ip = string.format("%d.%d.%d.%d", 11 + k % 200, math.floor(k / 7) % 256, (k * 13) % 256, 1 + k % 250)
    local body = string.format(
      '{"url":"https://example.com/page/%d?ref=bench","timestamp":"%s","visitor_ip":"%s","user_agent":"%s"}',
      k % 50, timestamp, ip, agents[k % #agents + 1])
    local headers = {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. token,
    }
    requests[k + 1] = wrk.format("POST", path, headers, body)
  end
  count = #requests
  index = math.random(count)
end

function request()
  index = index % count + 1
  return requests[index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"status_errors":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
