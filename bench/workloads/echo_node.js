// echo_node.js: the echo workload's server on Node.js `net`. Listens on
// 127.0.0.1 (port $ECHO_PORT, default 0: a free port), prints "PORT n" on
// stdout and serves until killed. Each chunk received is written straight
// back (Node's idiomatic echo server: no line splitting, which would only
// slow it down). echo_driver.py runs it against echo_client.c, the load
// generator shared by every server.
"use strict";
const net = require("net");

const server = net.createServer((sock) => {
  sock.on("data", (chunk) => sock.write(chunk));
  sock.on("end", () => sock.end());
  sock.on("error", () => sock.destroy());
});
server.listen(Number(process.env.ECHO_PORT || 0), "127.0.0.1", () => {
  process.stdout.write(`PORT ${server.address().port}\n`);
});
