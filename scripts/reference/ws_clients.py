#!/usr/bin/env python3
"""Realtime load for scripts/soak: N WebSocket clients of marketd's
/api/v1/realtime, each subscribed to the ticks of every symbol (`["*"]`),
checking what docs/realtime.md promises: `seq` counts per key from 1 with no
holes, no `gap` frame, no `error` frame, no close by the server.

Every second it writes one JSON object to --stats: connected clients,
messages received, and every problem seen (seq holes, gap frames, error
frames, unexpected closes). The soak reads the deltas every 10 s.
"""
import argparse
import asyncio
import json
import os

import websockets


class Stats:
    def __init__(self):
        self.connected = 0
        self.messages = 0
        self.ticks = 0
        self.holes = 0
        self.gaps = 0
        self.errors = 0
        self.closes = 0
        self.last_problem = ""

    def problem(self, what):
        self.last_problem = what[:300]


async def client(i, url, stats, stop):
    seqs = {}
    try:
        async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
            await ws.send(json.dumps({"type": "subscribe", "channel": "ticks", "symbols": ["*"]}))
            stats.connected += 1
            try:
                async for raw in ws:
                    stats.messages += 1
                    msg = json.loads(raw)
                    t = msg.get("type")
                    if t == "data_update":
                        stats.ticks += 1
                        key = msg["key"]
                        seq = msg["seq"]
                        last = seqs.get(key)
                        # The first message of a key may start anywhere (the
                        # client joined a running stream); after it, +1 each.
                        if last is not None and seq != last + 1:
                            stats.holes += 1
                            stats.problem(f"client {i}: {key} seq {last} -> {seq}")
                        seqs[key] = seq
                    elif t == "gap":
                        stats.gaps += 1
                        stats.problem(f"client {i}: {raw}")
                    elif t == "error":
                        stats.errors += 1
                        stats.problem(f"client {i}: {raw}")
                    elif t == "ping":
                        await ws.send('{"type":"pong"}')
            finally:
                stats.connected -= 1
    except Exception as e:  # noqa: BLE001 - every failure is a soak error
        if not stop.is_set():
            stats.closes += 1
            stats.problem(f"client {i}: {type(e).__name__}: {e}")
        return
    if not stop.is_set():
        stats.closes += 1
        stats.problem(f"client {i}: closed by the server")


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--stats", required=True)
    args = p.parse_args()
    stats = Stats()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(client(i, args.url, stats, stop)) for i in range(args.clients)]
    loop = asyncio.get_running_loop()
    import signal
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    while not stop.is_set():
        with open(args.stats + ".tmp", "w") as f:
            json.dump(vars(stats), f)
        os.replace(args.stats + ".tmp", args.stats)
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except asyncio.TimeoutError:
            pass
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
