-- POST /v1/consents/batch with 1000 events per request.
local key = os.getenv("KEY") or ""
local counter = 0
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. key
wrk.headers["Content-Type"] = "application/json"
math.randomseed(os.time())
local prefix = tostring(math.random(1, 1000000000))
request = function()
  counter = counter + 1
  local events = {}
  for i = 1, 1000 do
    events[i] = '{"subject":"batch-' .. prefix .. '-' .. counter .. '-' .. i ..
      '","purpose":"ads","version":1,"action":"grant","method":"import"}'
  end
  return wrk.format(nil, "/v1/consents/batch", nil, '{"events":[' .. table.concat(events, ",") .. ']}')
end
