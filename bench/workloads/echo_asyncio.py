"""echo_asyncio.py: the echo workload's server on Python asyncio streams.
Listens on 127.0.0.1 (port $ECHO_PORT, default 0: a free port), prints
"PORT n" on stdout and serves until killed: one coroutine per connection
reads a line (readline) and writes it back (write + drain). echo_driver.py
runs it against echo_client.c, the load generator shared by every server."""
import asyncio
import os


async def echo(reader, writer):
    while True:
        line = await reader.readline()
        if not line:
            break
        writer.write(line)
        await writer.drain()
    writer.close()


async def main():
    server = await asyncio.start_server(
        echo, "127.0.0.1", int(os.environ.get("ECHO_PORT") or 0))
    print("PORT", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
