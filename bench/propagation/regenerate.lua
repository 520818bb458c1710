-- wrk script: POSTs regenerateKey {"keyName":"Key1"} to the accounts listed in PATHS_FILE (one path
-- per line), in turn, with the owner token (TOKEN), and prints one JSON line with the figures
-- bench/propagation/run.py reads.
local paths = {}
for line in io.lines(os.getenv("PATHS_FILE")) do
  if line ~= "" then paths[#paths + 1] = line end
end
local headers = {
  ["Authorization"] = "Bearer " .. os.getenv("TOKEN"),
  ["Content-Type"] = "application/json",
}
local body = '{"keyName":"Key1"}'
local i = math.random(#paths)

request = function()
  i = i % #paths + 1
  return wrk.format("POST", paths[i], headers, body)
end

done = function(summary, latency, requests)
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"non2xx":%d,"errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
