-- issue 12: req.peer, documented since http.serve arrived, was never set
-- (always nil). It is the client's {host =, port =}, the same table for
-- the requests of one connection.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local async = cb.async
local http = corun.http

describe("issue 12: http.serve req.peer", function()
  after_each(helper.check)

  it("is the client's host and port, shared by a connection's requests", async(function()
    local peers = {}
    local srv = assert(http.serve("127.0.0.1", 0, function(req)
      peers[#peers + 1] = req.peer
      return 200, "ok"
    end))
    local s = assert(corun.tcp.connect("127.0.0.1", srv.port))
    assert(s:write("GET /a HTTP/1.1\r\nHost: x\r\n\r\n" ..
                   "GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    local out = s:read("a", 5)
    s:close()
    srv:close()
    local _, n = out:gsub("HTTP/1%.1 200 ", "")
    assert.equal(2, n)
    assert.equal(2, #peers)
    assert.equal("127.0.0.1", peers[1].host)
    assert.is_true(math.type(peers[1].port) == "integer" and peers[1].port > 0)
    assert.not_equal(srv.port, peers[1].port)
    assert.equal(peers[1], peers[2])
  end))
end)
