#!/usr/bin/env python3
"""cryptofeed's side of the decode comparison (scripts/compare.d/decode):
the trade and book-ticker frames of each recorded capture
(shared/fixtures/captures; Binance `@aggTrade`/`@bookTicker`, OKX
`trades`/`tickers`, the same selection as marketd's
crates/marketd-sources/benches/normalize.rs capture mode) fed to cryptofeed's
own exchange classes' `message_handler`, the code path its websocket
connection calls for every received frame (json.loads with Decimal, dispatch,
the `_trade` / `_ticker` parsers building Trade / Ticker objects, the
callbacks), in a loop, without network.

cryptofeed reads its symbol tables from the exchanges' REST APIs when a feed
is made; here they are filled beforehand (cryptofeed.symbols.Symbols) with the
capture's instruments only, so nothing is fetched.

Prints one line per capture: `CAPTURE <name> frames=.. ticks=.. msgs_per_s=..`.
"""
import asyncio
import os
import sys
import time

from cryptofeed.defines import TICKER, TRADES
from cryptofeed.exchanges import OKX, Binance, BinanceFutures
from cryptofeed.symbols import Symbols

SECONDS = float(os.environ.get("MARKETD_BENCH_SECONDS", "2"))


def frames_of(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if " <-" in line:
                continue
            _, sep, frame = line.rstrip("\n").partition(": ")
            if not sep:
                continue
            if '"event":' in frame:  # OKX subscribe acks name the channel too
                continue
            if any(k in frame for k in ('@aggTrade"', '@bookTicker"', '"channel":"trades"', '"channel":"tickers"')):
                out.append(frame)
    return out


def binance_symbols(frames, perp):
    """std symbol -> exchange symbol for the capture's instruments."""
    import json
    quotes = ("USDT", "BUSD", "BTC", "ETH", "EUR", "BNB")
    m = {}
    for f in frames:
        s = json.loads(f)["data"]["s"]
        q = next(q for q in quotes if s.endswith(q))
        std = f"{s[:-len(q)]}-{q}" + ("-PERP" if perp else "")
        m[std] = s
    return m


def okx_symbols(frames):
    import json
    m = {}
    for f in frames:
        inst = json.loads(f)["arg"]["instId"]
        m[inst] = inst
    return m


async def run(name, cls, frames, mapping):
    Symbols.set(cls.id, mapping, {"tick_size": {}, "instrument_type": {}})
    counts = {"ticks": 0}

    async def count(obj, receipt_timestamp):
        counts["ticks"] += 1

    feed = cls(symbols=list(mapping), channels=[TRADES, TICKER],
               callbacks={TRADES: count, TICKER: count})
    handler = feed.message_handler
    now = time.time()
    for f in frames:  # one pass: the tick count, and warm-up
        await handler(f, None, now)
    ticks = counts["ticks"]
    decoded = 0
    start = time.perf_counter()
    while time.perf_counter() - start < SECONDS:
        for f in frames:
            await handler(f, None, now)
        decoded += len(frames)
    rate = decoded / (time.perf_counter() - start)
    print(f"CAPTURE {name} frames={len(frames)} ticks={ticks} msgs_per_s={rate:.0f}", flush=True)


async def main(capture_dir):
    for name, cls in (("BINANCE.ws.1.0", Binance), ("BINANCE_FUTURES.ws.1.0", BinanceFutures),
                      ("OKX.ws.1.0", OKX)):
        frames = frames_of(os.path.join(capture_dir, name))
        if cls is OKX:
            mapping = okx_symbols(frames)
        else:
            mapping = binance_symbols(frames, perp=cls is BinanceFutures)
        await run(name, cls, frames, mapping)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
