-- scripts/wrk/report.lua: wrk's done() hook, printing the run's results as one
-- JSON line, marked with "BAKEOFF_JSON ", that harness/loadgen.py parses.
--
-- Why not parse wrk's human output: its numbers are rounded ("1.23ms",
-- "12.34k") and its layout changes between versions; done() gets the exact
-- counts and the full latency histogram (all values in microseconds).
--
-- Used as it is for plain GET workloads (`wrk -s report.lua URL`); the other
-- scripts in this folder load it with dofile() and add request generation.
-- No response() hook on purpose: defining one makes wrk parse and hand every
-- response to Lua, which slows wrk down. Statuses >= 400 are counted by wrk
-- itself (summary.errors.status, its "Non-2xx or 3xx responses" line).

local function int(n)
   return string.format("%d", n)
end

function done(summary, latency, requests)
   local e = summary.errors
   local fields = {
      '"requests":' .. int(summary.requests),
      '"duration_us":' .. int(summary.duration),
      '"bytes":' .. int(summary.bytes),
      '"latency_us":{'
         .. '"min":' .. int(latency.min)
         .. ',"p50":' .. int(latency:percentile(50))
         .. ',"p90":' .. int(latency:percentile(90))
         .. ',"p99":' .. int(latency:percentile(99))
         .. ',"p999":' .. int(latency:percentile(99.9))
         .. ',"max":' .. int(latency.max)
         .. ',"mean":' .. string.format("%.1f", latency.mean)
         .. ',"stdev":' .. string.format("%.1f", latency.stdev)
         .. '}',
      '"errors":{'
         .. '"connect":' .. int(e.connect)
         .. ',"read":' .. int(e.read)
         .. ',"write":' .. int(e.write)
         .. ',"timeout":' .. int(e.timeout)
         .. ',"status":' .. int(e.status)
         .. '}',
   }
   io.write("BAKEOFF_JSON {" .. table.concat(fields, ",") .. "}\n")
end
