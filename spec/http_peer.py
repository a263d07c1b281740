# spec/http_peer.py: a small HTTP(S) server for the corun.http client specs.
#   python3 spec/http_peer.py [certfile keyfile]   prints its port, serves
# /hello, /echo (method, headers and body back), /redirect, /loop,
# /status/N, /slow (2 s), /big (1 MB), /cookies (repeated Set-Cookie).
import http.server, json, socketserver, ssl, sys, time

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, status, body, headers=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        path = self.path
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if path == "/hello":
            self.send(200, "hello\n", [("Content-Type", "text/plain")])
        elif path == "/echo":
            self.send(200, json.dumps({
                "method": self.command, "body": body.decode("latin-1"),
                "headers": {k.lower(): ", ".join(self.headers.get_all(k))
                            for k in self.headers.keys()},
            }), [("Content-Type", "application/json")])
        elif path == "/redirect":
            self.send(302, "", [("Location", "/hello")])
        elif path == "/loop":
            self.send(302, "", [("Location", "/loop")])
        elif path.startswith("/status/"):
            self.send(int(path[8:]), "status " + path[8:])
        elif path == "/slow":
            time.sleep(2)
            self.send(200, "slow")
        elif path == "/big":
            self.send(200, b"x" * (1 << 20))
        elif path == "/cookies":
            self.send(200, "", [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
                                ("X-Mixed-Case", "yes")])
        else:
            self.send(404, "not found")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = handle_any

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 2048

    def handle_error(self, request, client_address):
        pass  # clients that give up (timeouts, cancels) are expected

srv = Server(("127.0.0.1", 0), Handler)
if len(sys.argv) == 3:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
