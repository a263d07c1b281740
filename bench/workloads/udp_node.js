// udp_node.js: the udp workload's server on Node.js `dgram`. Binds
// 127.0.0.1 (port $UDP_PORT, default 0: a free port), prints "PORT n" on
// stdout and serves until killed: each datagram received is sent back to
// its sender. udp_driver.py runs it against udp_client.c, the load
// generator shared by every server.
"use strict";
const dgram = require("dgram");

const sock = dgram.createSocket({ type: "udp4", recvBufferSize: 1 << 20 });
sock.on("message", (msg, rinfo) => sock.send(msg, rinfo.port, rinfo.address));
sock.bind(Number(process.env.UDP_PORT || 0), "127.0.0.1", () => {
  process.stdout.write(`PORT ${sock.address().port}\n`);
});
