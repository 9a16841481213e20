-- wrk script: POST /v1/devices/{id}/heartbeat for the bench fleet made by scripts/bench.
--
-- Arguments (after `--`): <ids file> <mode> <every> <wrk threads> [<firmware> [<firmware sha256>]]
--   ids file  one device id a line, line i = device i (md5('bench' || i)::uuid, written by scripts/bench)
--   mode      plain:   devices with i % every ~= 0 (no active assignment: no delivery)
--             deliver: devices with i % every == 0 (an active assignment: each heartbeat delivers a manifest)
--             <file>:  the devices whose numbers i the file lists, one a line (every is then ignored)
--   firmware  the version each heartbeat reports (default 1.0.0, what the fleet runs; 1.1.0 applies an update)
--   firmware sha256  the image each heartbeat says it runs (firmware_sha256; default: not said)
-- Device i's token is 'otd_bench_' .. i. Each wrk thread loads the file once and cycles
-- through its devices from its own starting point.

local counter = 0

function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
end

local body
local list, ids, pos

function init(args)
   local file, mode, every = args[1], args[2] or "plain", tonumber(args[3] or "10")
   body = '{"firmware_version":"' .. (args[5] or "1.0.0") .. '"'
   if args[6] then
      body = body .. ',"firmware_sha256":"' .. args[6] .. '"'
   end
   body = body .. '}'
   ids, list = {}, {}
   local i = 0
   for line in io.lines(file) do
      i = i + 1
      ids[i] = line
      local assigned = (i % every == 0)
      if (mode == "plain" or mode == "deliver") and (mode == "deliver") == assigned then
         list[#list + 1] = i
      end
   end
   if mode ~= "plain" and mode ~= "deliver" then
      for line in io.lines(mode) do
         list[#list + 1] = tonumber(line)
      end
   end
   if #list == 0 then
      error("heartbeat.lua: no devices for mode " .. mode)
   end
   -- Threads start evenly spread over the list, so they do not hit the same rows.
   local nthreads = tonumber(args[4] or "2")
   pos = math.floor((tid or 0) * #list / nthreads)
end

function request()
   pos = pos % #list + 1
   local i = list[pos]
   return wrk.format("POST", "/v1/devices/" .. ids[i] .. "/heartbeat",
                     {["Authorization"] = "Bearer otd_bench_" .. i,
                      ["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d p999_us=%d max_us=%d non2xx=%d errors=%d\n",
      summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max,
      e.status, e.connect + e.read + e.write + e.timeout))
end
