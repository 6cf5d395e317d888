"""The peer of marketd's cached latest price for scripts/compare.d/http-latest:
a FastAPI service (uvicorn, uvloop and httptools: its fastest setup) answering
GET /api/v1/prices/latest?symbol=S with the JSON marketd answered for S,
held in an in-process dict: the seed services' best case (no provider, no
cache backend, no store; what is measured is the framework and the server).

The answers are read at start from the JSON file named by
MARKETD_COMPARE_PRICES ({symbol: body}); an unknown symbol is a 404 in
marketd's error shape.
"""
import json
import os
from datetime import datetime, timezone

from fastapi import FastAPI
from fastapi.responses import JSONResponse

with open(os.environ["MARKETD_COMPARE_PRICES"]) as f:
    PRICES = json.load(f)

app = FastAPI()


@app.get("/api/v1/prices/latest")
async def latest(symbol: str):
    body = PRICES.get(symbol.upper())
    if body is None:
        return JSONResponse(status_code=404, content={
            "detail": f"no price for {symbol}", "error_code": "SYMBOL_NOT_FOUND",
            "timestamp": datetime.now(timezone.utc).isoformat(), "request_id": ""})
    return JSONResponse(content=body)
