-- POST /v1/consents, one event per request, a new subject each time (per connection thread).
local key = os.getenv("KEY") or ""
local counter = 0
local thread_id = 0
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. key
wrk.headers["Content-Type"] = "application/json"
setup = function(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end
request = function()
  counter = counter + 1
  local body = '{"subject":"single-' .. tostring(tid) .. '-' .. counter ..
    '","purpose":"ads","version":1,"action":"grant","method":"api"}'
  return wrk.format(nil, "/v1/consents", nil, body)
end
