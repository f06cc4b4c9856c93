-- wrk script: a client that composes a pipeline itself, calling its steps one after the
-- other over HTTP; each answer's "predictions" become the next step's "instances".
-- One connection per thread (run with -tN -cN), so each thread's requests alternate with
-- their answers. Counts completed chains; prints one "BENCH_JSON {...}" line when done.
-- Usage: wrk -t4 -c4 -d10s -s chain.lua URL -- BODY_FILE PATH1 PATH2 ...

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  first = file:read("*a")
  file:close()
  paths = {}
  for i = 2, #args do
    paths[#paths + 1] = args[i]
  end
  step, body, chains, failed = 1, first, 0, 0
end

function request()
  return wrk.format("POST", paths[step], {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, answer)
  if status ~= 200 then
    failed = failed + 1
    step, body = 1, first
  elseif step == #paths then
    chains = chains + 1
    step, body = 1, first
  else
    step = step + 1
    body = (answer:gsub('^{"predictions":', '{"instances":', 1))
  end
end

function done(summary, latency, requests)
  local total, bad = 0, 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("chains")
    bad = bad + thread:get("failed")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"chains": %d, "requests": %d, "duration_us": %d, "failed": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "timeout": %d}\n',
    total, summary.requests, summary.duration, bad, e.connect, e.read, e.write, e.timeout))
end
