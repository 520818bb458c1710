-- wrk script: POSTs listKeys to each path of KEYS_FILE in turn (one management path per line), with
-- the owner token from TOKEN, and prints the JSON line bench/benchlib.py's wrk() reads.
local paths = {}
for line in io.lines(os.getenv("KEYS_FILE")) do
  if line ~= "" then paths[#paths + 1] = line end
end
local token = os.getenv("TOKEN")
local i = math.random(#paths)

request = function()
  i = i % #paths + 1
  return wrk.format("POST", paths[i], { ["Authorization"] = "Bearer " .. token, ["Content-Length"] = "0" })
end

done = function(summary, latency, requests)
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"non2xx":%d,"errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
