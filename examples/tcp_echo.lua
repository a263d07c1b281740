-- A TCP echo server and three clients in one script. The server listens
-- on 127.0.0.1, port 0 (the system picks a free port, server.port tells
-- which) and runs one task per connection: it reads lines and sends each
-- back until the client closes its end. The clients run concurrently;
-- each sends its lines, reads the echoes, and closes. Then the server is
-- closed, which lets the script end.
-- Run: corun examples/tcp_echo.lua
local corun = require "corun"

local served = 0

local function echo(conn)           -- the handler: a new task per connection
  local _ <close> = conn            -- closed however the handler ends
  served = served + 1
  while true do
    local line = conn:read("L")     -- a line with its "\n"; nil at the end
    if line == nil then break end
    conn:write("echo: ", line)
  end
end

local server = assert(corun.tcp.listen("127.0.0.1", 0, echo))
print("listening:", server.port > 0)

local function client(name, lines)
  local conn <close> = assert(corun.tcp.connect("127.0.0.1", server.port))
  local got = {}
  for _, line in ipairs(lines) do
    conn:write(line, "\n")
    got[#got + 1] = conn:read("l")  -- the echo, without its "\n"
  end
  return name .. " got " .. table.concat(got, " | ")
end

local replies = corun.gather(
  function() return client("ann", {"hello", "world"}) end,
  function() return client("bob", {"one", "two", "three"}) end,
  function() return client("cy", {"bye"}) end)
for _, r in ipairs(replies) do print(r) end

-- A read with a timeout leaves the stream usable; read("a") reads to the
-- end of the stream.
local conn <close> = assert(corun.tcp.connect("127.0.0.1", server.port))
print(conn:read("l", 0.05))         -- the server says nothing first
conn:write("x\ny\n")
print(conn:read(4))                 -- exactly 4 bytes
print(conn:read("l"))               -- the rest of that line
print(conn:read("L") == "echo: y\n")   -- "L" keeps the newline
conn:close()                        -- our end is done...
print(conn:read("l"))               -- ...and nothing is left to read

server:close()
print("connections served:", served)
print(corun.tcp.connect("127.0.0.1", server.port))
