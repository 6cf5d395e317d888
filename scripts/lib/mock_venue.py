#!/usr/bin/env python3
"""A Binance-like combined-stream WebSocket venue for fault scenarios.

    mock_venue.py PORT MODE_SCHEDULE

Serves `/stream?streams=btcusdt@aggTrade/...` with aggTrade frames in
Binance's wire format (shared/fixtures: `{"stream": ..., "data": {"e":
"aggTrade", ...}}`), 20 per second per stream, with consecutive trade ids
per stream (ids go on counting while a client is away, as a venue's do).

MODE_SCHEDULE is `normal` (always well-behaved) or `chaos:SECONDS`: every
SECONDS the venue moves to the next misbehaviour of the cycle, then back to
normal for the last SECONDS of each cycle:
  drop     accepts, streams a moment, then kills the TCP connection
  silence  accepts and sends nothing (the client's idle timeout must act)
  http429  refuses the upgrade with 429 and Retry-After: 1
  garbage  sends non-JSON text and binary frames between real ones
  trickle  sends one frame every 2 s (a slow venue)
  normal   well-behaved
The current mode is printed on each change."""
import asyncio
import http
import json
import random
import sys
import time

import websockets
from websockets.asyncio.server import serve

CYCLE = ["drop", "silence", "http429", "garbage", "trickle", "normal"]
next_id = {}
started = time.monotonic()


def mode(schedule):
    if schedule == "normal":
        return "normal"
    secs = float(schedule.split(":", 1)[1])
    return CYCLE[int((time.monotonic() - started) / secs) % len(CYCLE)]


def frame(stream):
    sym = stream.split("@", 1)[0].upper()
    i = next_id.get(stream, 1_000_000)
    next_id[stream] = i + 1
    now = int(time.time() * 1000)
    price = f"{65000 + random.uniform(-50, 50):.2f}"
    return json.dumps({"stream": stream, "data": {"e": "aggTrade", "E": now, "s": sym, "a": i,
                                                   "p": price, "q": "0.01000000", "f": i, "l": i,
                                                   "T": now, "m": False, "M": True}})


async def handler(ws, schedule):
    query = ws.request.path.split("streams=", 1)
    streams = query[1].split("/") if len(query) == 2 else []
    opened = time.monotonic()
    try:
        while True:
            m = mode(schedule)
            if m == "drop" and time.monotonic() - opened > 1.0:
                ws.transport.abort()
                return
            if m == "silence":
                await asyncio.sleep(0.5)
                continue
            if m == "garbage":
                await ws.send("this is not json {")
                await ws.send(b"\x00\x01binary")
            for s in streams:
                await ws.send(frame(s))
            await asyncio.sleep(2.0 if m == "trickle" else 0.05)
    except websockets.ConnectionClosed:
        return


def process_request(schedule):
    def check(connection, request):
        if mode(schedule) == "http429":
            r = connection.respond(http.HTTPStatus.TOO_MANY_REQUESTS, "slow down\n")
            r.headers["Retry-After"] = "1"
            return r
        return None
    return check


async def main(port, schedule):
    last = None

    async def report():
        nonlocal last
        while True:
            m = mode(schedule)
            if m != last:
                print(f"{time.strftime('%H:%M:%S')} mode {m}", flush=True)
                last = m
            await asyncio.sleep(0.2)

    async with serve(lambda ws: handler(ws, schedule), "127.0.0.1", port,
                     process_request=process_request(schedule)):
        await report()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
