-- scripts/wrk/pipeline.lua: HTTP/1.1 pipelining, DEPTH requests per write
-- (`wrk -s pipeline.lua URL -- DEPTH`, default 16), all for the URL's path.
-- wrk counts every response as one request, so requests/s compare directly
-- with the unpipelined workloads. After wg/wrk: scripts/pipeline.lua.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local batch

function init(args)
   local depth = tonumber(args[1] or "16")
   local one = wrk.format(nil, wrk.path)
   local requests = {}
   for i = 1, depth do
      requests[i] = one
   end
   -- Built once: request() is called for every write, and must be cheap.
   batch = table.concat(requests)
end

function request()
   return batch
end
