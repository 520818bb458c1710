-- wrk script: cycles through "PATH KEY" lines (KEYS_FILE), sending each key in the header that
-- Cognitive Services uses, and prints one JSON line with the figures bench/verify/run.py reads.
local entries = {}
for line in io.lines(os.getenv("KEYS_FILE")) do
  local path, key = line:match("^(%S+)%s+(%S*)$")
  if path then entries[#entries + 1] = { path, key } end
end
local i = math.random(#entries)

request = function()
  i = i % #entries + 1
  local e = entries[i]
  if e[2] == "" then
    return wrk.format("GET", e[1])
  end
  return wrk.format("GET", e[1], { ["Ocp-Apim-Subscription-Key"] = e[2] })
end

done = function(summary, latency, requests)
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"non2xx":%d,"errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
