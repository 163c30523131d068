-- GET /v1/decisions for a random one of the seeded subjects. The hello-world baseline gets the
-- same script, so both pay the same load-generator cost.
local key = os.getenv("KEY") or ""
local subjects = tonumber(os.getenv("SUBJECTS") or "10000")
local purposes = { "ads", "offers", "sharing", "analytics" }
wrk.headers["Authorization"] = "Bearer " .. key
math.randomseed(os.time())
request = function()
  local s = math.random(0, subjects - 1)
  local p = purposes[math.random(1, #purposes)]
  return wrk.format("GET", "/v1/decisions?subject=cust-" .. s .. "&purpose=" .. p)
end
