#!/usr/bin/env python3
"""A mock Binance WebSocket venue for scripts/soak: serves the aggTrade and
bookTicker frames of a recorded capture (shared/fixtures/captures, cryptofeed's
format: `<unix time>: <json>` a line) over Binance's combined-stream protocol
(`/stream?streams=a/b`, frames `{"stream":..,"data":..}`, live `SUBSCRIBE`
answered `{"result":null,"id":N}`), in a loop, at a fixed rate.

Why rewrite frames: a soak runs far longer than the capture, and replaying
the same trade ids would make marketd drop every pass after the first as
repeats (and count a gap at each wrap). Each pass therefore renumbers the
aggregate-trade ids (`a`, `f`, `l`) and book-ticker update ids (`u`)
consecutively per stream and stamps `E`/`T` with the current time, so every
served trade is new and the id sequence has no hole: any gap marketd counts
is a real loss between this mock and the connector.

Counters (connections, frames sent per stream) are written as one JSON
object to --stats every second, for the soak's error checks.
"""
import argparse
import asyncio
import json
import sys
import time
from urllib.parse import urlparse, parse_qs

import websockets


def load_frames(path):
    """The capture's aggTrade and bookTicker frames, as (stream, data dict)."""
    frames = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if " <-> " in line or " <- " in line:
                continue
            _, _, payload = line.partition(": ")
            try:
                msg = json.loads(payload)
            except ValueError:
                continue
            stream = msg.get("stream", "")
            if stream.endswith("@aggTrade") or stream.endswith("@bookTicker"):
                frames.append((stream, msg["data"]))
    return frames


class Venue:
    def __init__(self, frames, rate):
        self.frames = frames
        self.rate = rate
        # Per stream, the next id to give (continues across connections).
        self.next_id = {}
        self.connections = 0
        self.sent = {}

    def stamp(self, stream, data):
        d = dict(data)
        now_ms = int(time.time() * 1000)
        if stream.endswith("@aggTrade"):  # one trade id range per frame
            a = self.next_id.get(stream, d["a"])
            d["a"] = a
            d["f"] = d["l"] = a
            d["E"] = now_ms
            d["T"] = now_ms
            self.next_id[stream] = a + 1
        else:  # bookTicker (its `a` is the ask price)
            u = self.next_id.get(stream, d["u"])
            d["u"] = u
            if "E" in d:
                d["E"] = now_ms
                d["T"] = now_ms
            self.next_id[stream] = u + 1
        return json.dumps({"stream": stream, "data": d}, separators=(",", ":"))

    async def handler(self, ws):
        self.connections += 1
        path = ws.request.path if hasattr(ws, "request") else ws.path
        query = parse_qs(urlparse(path).query)
        subscribed = set()
        for s in query.get("streams", [""])[0].split("/"):
            if s:
                subscribed.add(s)

        async def reader():
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                except (ValueError, TypeError):
                    continue
                if msg.get("method") == "SUBSCRIBE":
                    subscribed.update(msg.get("params", []))
                    await ws.send(json.dumps({"result": None, "id": msg.get("id")}))
                elif msg.get("method") == "UNSUBSCRIBE":
                    subscribed.difference_update(msg.get("params", []))
                    await ws.send(json.dumps({"result": None, "id": msg.get("id")}))

        read_task = asyncio.create_task(reader())
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        try:
            while True:
                for stream, data in self.frames:
                    if stream not in subscribed:
                        continue
                    next_at += interval
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await ws.send(self.stamp(stream, data))
                    self.sent[stream] = self.sent.get(stream, 0) + 1
                if not any(s in subscribed for s, _ in self.frames):
                    await asyncio.sleep(0.1)
                    next_at = time.monotonic()
        except websockets.ConnectionClosed:
            pass
        finally:
            read_task.cancel()


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--capture", required=True)
    p.add_argument("--port-file", required=True, help="the bound port is written here")
    p.add_argument("--rate", type=float, default=20.0, help="frames per second per connection")
    p.add_argument("--stats", required=True)
    args = p.parse_args()
    venue = Venue(load_frames(args.capture), args.rate)
    if not venue.frames:
        sys.exit(f"no aggTrade/bookTicker frames in {args.capture}")
    async with websockets.serve(venue.handler, "127.0.0.1", 0, ping_interval=20, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        with open(args.port_file, "w") as f:
            f.write(str(port))
        while True:
            with open(args.stats + ".tmp", "w") as f:
                json.dump({"connections": venue.connections, "sent": venue.sent}, f)
            import os
            os.replace(args.stats + ".tmp", args.stats)
            await asyncio.sleep(1)


if __name__ == "__main__":
    asyncio.run(main())
