#!/usr/bin/env python3
"""A TCP forwarder for fault scenarios: listens on 127.0.0.1:LISTEN and
forwards every connection to 127.0.0.1:TARGET. Killing it resets every
connection through it and refuses new ones until it is started again, which
is what clients see of a broker that stops and restarts (the broker behind
it keeps its state, as a real cluster's brokers keep their logs)."""
import asyncio
import sys


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def handle(client_r, client_w, target):
    try:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        client_w.close()
        return
    await asyncio.gather(pipe(client_r, up_w), pipe(up_r, client_w))


async def main(listen, target):
    server = await asyncio.start_server(lambda r, w: handle(r, w, target), "127.0.0.1", listen, reuse_address=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
