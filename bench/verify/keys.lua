-- wrk script: cycles through "PATH KEY" lines (KEYS_FILE), sending each key in the header that
-- Cognitive Services uses (no key header for an empty KEY), plus any `wrk -H` headers, and prints
-- one JSON line with the figures bench/benchlib.py reads. Each line's request is formatted once
-- and reused, so wrk spends its share of the cores sending rather than formatting.
local entries = {}
for line in io.lines(os.getenv("KEYS_FILE")) do
  local path, key = line:match("^(%S+)%s+(%S*)$")
  if path then entries[#entries + 1] = { path, key } end
end
local formatted = {}
local i = math.random(#entries)

request = function()
  i = i % #entries + 1
  local req = formatted[i]
  if req == nil then
    local e = entries[i]
    local headers = {}
    for name, value in pairs(wrk.headers) do headers[name] = value end
    if e[2] ~= "" then headers["Ocp-Apim-Subscription-Key"] = e[2] end
    req = wrk.format("GET", e[1], headers)
    formatted[i] = req
  end
  return req
end

done = function(summary, latency, requests)
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"non2xx":%d,"errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
