-- echo_corun.lua: the echo workload's server on corun. Listens on
-- 127.0.0.1 (port $ECHO_PORT, default 0: a free port), prints "PORT n" on
-- stdout and serves until killed: one task per connection reads a line
-- (read("L"), newline kept) and writes it back. echo_driver.py runs it
-- against echo_client.c, the load generator shared by every server.
local corun = require "corun"

local function echo(s)
  local read, write = s.read, s.write
  while true do
    local line = read(s, "L")
    if not line then break end
    write(s, line)
  end
  s:close()
end

local server = assert(corun.tcp.listen("127.0.0.1",
  tonumber(os.getenv("ECHO_PORT")) or 0, echo))
print("PORT " .. server.port)
io.stdout:flush()
