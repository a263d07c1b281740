// http_node.js: the http workloads' server on Node's `http` module.
// Listens on 127.0.0.1 (port $HTTP_PORT, default 0: a free port), prints
// "PORT n" on stdout and serves until killed: every request gets 200 and
// the same tiny body as http_corun.lua ("hello world\n", text/plain),
// keep-alive. http_driver.py runs it as it runs http_corun.lua.
"use strict";
const http = require("http");

const BODY = "hello world\n";
const server = http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "text/plain",
                       "Content-Length": BODY.length });
  res.end(BODY);
});
server.keepAliveTimeout = 60000;
server.listen(Number(process.env.HTTP_PORT || 0), "127.0.0.1", () => {
  process.stdout.write(`PORT ${server.address().port}\n`);
});
