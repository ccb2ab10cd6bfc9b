-- GET_NUMBER and FINISH_ACTIVATION alternating over wrk's connections (bench/wrk.py).
-- bench/wrk.py prepends `bodies = {...}` (GET_NUMBER orders, key included) and `key = "..."`.
-- A GET_NUMBER answer's activationId goes to a queue; the next request finishes the oldest
-- one (status 4 frees the number), otherwise asks for another number. With 64 connections
-- the two calls alternate; at most ~64 operations are open at any time.

local open_ids = {}
local head, tail = 1, 0
local next_body = 0
-- Globals, not locals: done() reads them from each thread with thread:get().
gets, finishes, no_numbers, failures = 0, 0, 0, 0
wrk.headers["Content-Type"] = "application/json; charset=utf-8"
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function request()
   if head <= tail then
      local id = open_ids[head]
      open_ids[head] = nil
      head = head + 1
      local body = '{"action":"FINISH_ACTIVATION","key":"' .. key .. '","activationId":' .. id
         .. ',"status":4,"sum":12.5}'
      return wrk.format("POST", "/onlinesim/finishActivation", nil, body)
   end
   next_body = next_body % #bodies + 1
   return wrk.format("POST", "/onlinesim/getNumber", nil, bodies[next_body])
end

function response(status, headers, body)
   if status ~= 200 then
      failures = failures + 1
      return
   end
   local id = string.match(body, '"activationId":(%d+)')
   if id ~= nil then
      gets = gets + 1
      tail = tail + 1
      open_ids[tail] = id
   elseif string.find(body, "NO_NUMBERS", 1, true) then
      no_numbers = no_numbers + 1
   elseif string.find(body, '"SUCCESS"', 1, true) then
      finishes = finishes + 1
   else
      failures = failures + 1
   end
end

function done(summary, latency, requests)
   local g, f, n, x = 0, 0, 0, 0
   for _, thread in ipairs(threads) do
      g = g + thread:get("gets")
      f = f + thread:get("finishes")
      n = n + thread:get("no_numbers")
      x = x + thread:get("failures")
   end
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"gets":%d,"finishes":%d,"no_numbers":%d,'
         .. '"failures":%d,"socket_errors":%d,"non_2xx":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
         .. '"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
      summary.requests, summary.duration, g, f, n, x,
      summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
      summary.errors.status, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
