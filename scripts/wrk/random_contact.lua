-- scripts/wrk/random_contact.lua: GET <URL path><id> with a random existing id,
-- 1 to CONTACTS, on every request (`wrk -s random_contact.lua
-- http://host/contacts/ -- CONTACTS`).
--
-- Each thread seeds its generator with its own number, so threads do not all
-- ask for the same ids, and a rerun asks for the same sequence as before.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

-- Up to this many contacts, every request is formatted once in init() and
-- request() only picks one: wrk.format() per request costs wrk CPU time that
-- the server, on the same machine, would otherwise get.
local PREBUILT_MAX = 100000

local next_thread = 0
local contacts, prebuilt

function setup(thread)
   next_thread = next_thread + 1
   thread:set("thread_number", next_thread)
end

function init(args)
   contacts = tonumber(args[1] or "10000")
   math.randomseed(thread_number or 1)
   if contacts <= PREBUILT_MAX then
      prebuilt = {}
      for id = 1, contacts do
         prebuilt[id] = wrk.format(nil, wrk.path .. id)
      end
   end
end

function request()
   local id = math.random(1, contacts)
   if prebuilt then
      return prebuilt[id]
   end
   return wrk.format(nil, wrk.path .. id)
end
