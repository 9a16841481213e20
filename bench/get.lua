-- wrk script: GET the URL wrk is given, with an API key.
--
-- Arguments (after `--`): <api key>
-- The summary line scripts/bench parses is report.lua's, loaded from this script's folder.

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")

local key

function init(args)
   key = args[1]
end

function request()
   return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. key})
end
