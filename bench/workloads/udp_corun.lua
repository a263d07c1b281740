-- udp_corun.lua: the udp workload's server on corun. Binds 127.0.0.1
-- (port $UDP_PORT, default 0: a free port), prints "PORT n" on stdout and
-- serves until killed: one task receives each datagram (sock:recv) and
-- sends it back to its sender. udp_driver.py runs it against
-- udp_client.c, the load generator shared by every server.
local corun = require "corun"

local sock = assert(corun.udp.bind("127.0.0.1",
  tonumber(os.getenv("UDP_PORT")) or 0))
assert(sock:setoption("rcvbuf", 1 << 20))
local _, port = sock:getsockname()
print("PORT " .. port)
io.stdout:flush()
local recv, send = sock.recv, sock.send
while true do
  local data, host, p = recv(sock)
  if not data then break end
  send(sock, data, host, p)
end
