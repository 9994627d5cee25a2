-- wrk script: POST pre-signed, distinct PeopleForce deliveries read from REQUESTS
-- (one "signature<TAB>body" per line, written by load.py).
local pairs_ = {}
local next_ = 1

function init(args)
  for line in io.lines(os.getenv("REQUESTS")) do
    local tab = line:find("\t", 1, true)
    pairs_[#pairs_ + 1] = { line:sub(1, tab - 1), line:sub(tab + 1) }
  end
  -- Each wrk thread starts at its own offset, so threads do not send the same bodies.
  next_ = (tonumber(wrk.thread:get("offset")) or 0) + 1
end

local thread_count = 0
function setup(thread)
  -- Half the file each (load.py writes 300,000: enough for two threads of 150,000).
  thread:set("offset", thread_count * 150000)
  thread_count = thread_count + 1
end

function request()
  local pair = pairs_[((next_ - 1) % #pairs_) + 1]
  next_ = next_ + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["X-PeopleForce-Signature"] = pair[1],
  }, pair[2])
end
