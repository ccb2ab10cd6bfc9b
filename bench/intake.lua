-- POST /intake/sms over wrk's connections (bench/delivery_wrk.py), every SMS unique.
-- bench/delivery_wrk.py prepends `phones = {...}`, `token`, `tag` and `rate` (SMS/s offered,
-- 0 = as fast as the connections go). Each text carries the wall-clock time of its send, so
-- the receiver measures intake -> PUSH_SMS latency on the same clock (CLOCK_REALTIME).

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now()
   ffi.C.clock_gettime(0, ts)
   return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

local sent = 0
local next_slot = nil
-- Globals, not locals: done() reads them from the thread with thread:get().
accepted, refused = 0, 0
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

if rate > 0 then
   -- Open loop at `rate`: request k leaves at start + k / rate whatever the others do (as
   -- long as a connection is free), as SMS arrive from a farm.
   function delay()
      local t = now()
      if next_slot == nil then
         next_slot = t
      end
      next_slot = next_slot + 1 / rate
      local wait = (next_slot - t) * 1000
      if wait < 0 then
         return 0
      end
      return math.floor(wait)
   end
end

function request()
   sent = sent + 1
   local phone = phones[sent % #phones + 1]
   local body = string.format(
      '{"phone":"%s","sender":"Bench","text":"%s %d t=%.6f","message_id":"%s%d"}',
      phone, tag, sent, now(), tag, sent)
   return wrk.format("POST", "/intake/sms", nil, body)
end

function response(status, headers, body)
   if status == 202 then
      accepted = accepted + 1
   else
      refused = refused + 1
   end
end

function done(summary, latency, requests)
   local a, r = 0, 0
   for _, thread in ipairs(threads) do
      a = a + thread:get("accepted")
      r = r + thread:get("refused")
   end
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"accepted":%d,"refused":%d,'
         .. '"socket_errors":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
      summary.requests, summary.duration, a, r,
      summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
