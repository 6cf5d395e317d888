"""Schemathesis hooks of scripts/proof.d/api (docs/proof.md, section api).

The served OpenAPI document states everything marketd validates that JSON
Schema can state. A few rules it cannot: they relate fields or parameters
to each other, follow a grammar that is not regular, or depend on stored
state. A request generated as valid by the schema ("positive") may break
one of them and be refused, rightly, with a 422; the check
positive_data_acceptance would call that a failure.

`before_call` repairs positive cases on exactly those rules and nothing else,
so that they keep testing everything the schema does say. Negative cases
are never touched: every one must still be refused. The rules:

- Integers written as integers: JSON Schema counts 3.0 as the integer 3,
  the server's integer fields do not read it.
- `from` before `to` (series and TDA-signal reads): `to` is dropped when it
  is not after `from` (bounds read as the server reads them, clamped).
- TDA: every point as long as the first; a distance matrix square,
  symmetric, zero on the diagonal; a bar's death not before its birth; a
  prime modulus; an `upload_id` that exists (one made here).
- Uploads: the body is a document in the `format` asked for. (And no
  negative upload has a body of another JSON type than a string: on the
  wire it is text all the same; see `filter_case`.)
- Connectors: URLs (WHATWG syntax) point at a local upstream (a stub here
  that answers JSON to a preview) or a closed local port, never a real
  venue; mapping paths are JSONPath; no secret is `***` (it stands for a
  stored one); a venue's streams (symbols times channels) within its limit.

Environment: MARKETD_BASE (the server), MARKETD_ADMIN_KEY (to make the
upload the TDA cases name).
"""

import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
import schemathesis

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)
REDACTED = "***"


def clamp(n):
    return max(I64_MIN, min(I64_MAX, n))


def bound_ns(text):
    """A time bound as marketd_model::time::parse_bound reads it (None: invalid)."""
    if not isinstance(text, str):
        return None
    digits = text[1:] if text[:1] in "+-" else text
    if digits and digits.isascii() and digits.isdigit():
        n = clamp(int(text))
        a = abs(n)
        if a < 10**11:
            return clamp(n * 10**9)
        if a < 10**14:
            return clamp(n * 10**6)
        if a < 10**17:
            return clamp(n * 10**3)
        return n
    m = RFC3339.fullmatch(text)
    if m is None:
        return None
    y, mo, d, h, mi, sec = (int(m.group(i)) for i in range(1, 7))
    frac = (m.group(7) or ".")[1:10].ljust(9, "0")
    if sec == 60:  # a leap second reads as the last nanosecond before it
        sec, frac = 59, "999999999"
    offset = 0
    if m.group(8) not in ("Z", "z"):
        sign = -1 if m.group(8)[0] == "-" else 1
        offset = sign * (int(m.group(8)[1:3]) * 3600 + int(m.group(8)[4:6]) * 60)
    days = days_from_civil(y, mo, d)
    return clamp(((days * 86400 + h * 3600 + mi * 60 + sec - offset) * 10**9) + int(frac))


def days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date (any year)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def order_range(query):
    if not isinstance(query, dict) or "from" not in query or "to" not in query:
        return
    f, t = bound_ns(query["from"]), bound_ns(query["to"])
    if f is not None and t is not None and f >= t:
        del query["to"]


def is_prime(p):
    return p >= 2 and all(p % d for d in range(2, int(p**0.5) + 1))


def prime_at_most(m):
    m = max(2, int(m))
    while not is_prime(m):
        m -= 1
    return m


def ordered_bars(bars):
    if not isinstance(bars, list):
        return
    for bar in bars:
        if isinstance(bar, list) and len(bar) == 2 and bar[1] is not None and bar[1] < bar[0]:
            bar[0], bar[1] = bar[1], bar[0]


def repair_vietoris_rips(body):
    points = body.get("points")
    if isinstance(points, list) and points and isinstance(points[0], list):
        dim = len(points[0])
        for i, row in enumerate(points):
            points[i] = (row + [0.0] * dim)[:dim]
    matrix = body.get("distance_matrix")
    if isinstance(matrix, list) and matrix:
        n = len(matrix)

        def entry(i, j):
            row = matrix[max(i, j)]
            k = min(i, j)
            return abs(row[k]) if k < len(row) else 1.0

        body["distance_matrix"] = [[0.0 if i == j else entry(i, j) for j in range(n)] for i in range(n)]
    if isinstance(body.get("modulus"), int):
        body["modulus"] = prime_at_most(body["modulus"])
    if "upload_id" in body:
        body["upload_id"] = UPLOAD.id()


def repair_tda(body, kind):
    if not isinstance(body, dict):
        return
    kind = body.get("kind", kind)
    if kind == "vietoris-rips":
        repair_vietoris_rips(body)
    elif kind == "summaries" and isinstance(body.get("diagrams"), dict):
        for bars in body["diagrams"].values():
            ordered_bars(bars)
    elif kind == "distance":
        ordered_bars(body.get("a"))
        ordered_bars(body.get("b"))


class Upstream(BaseHTTPRequestHandler):
    """A REST upstream for connector previews: one record, any request."""

    BODY = json.dumps(
        {"data": [{"s": "AAPL", "p": "187.5", "q": "2", "t": 1700000000000, "id": "1", "side": "buy"}]}
    ).encode()

    def answer(self):
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        try:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(self.BODY)))
            self.end_headers()
            self.wfile.write(self.BODY)
        except OSError:
            pass  # the preview gave up (its timeout_ms): nothing to answer

    do_GET = do_POST = do_PUT = do_DELETE = answer

    def log_message(self, *args):
        pass


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that went away


class Lazy:
    """The local upstream and the upload, made on first use."""

    def __init__(self):
        self.lock = threading.Lock()
        self.upstream_url = None
        self.upload_id = None

    def url(self):
        with self.lock:
            if self.upstream_url is None:
                server = QuietServer(("127.0.0.1", 0), Upstream)
                threading.Thread(target=server.serve_forever, daemon=True).start()
                self.upstream_url = f"http://127.0.0.1:{server.server_address[1]}/trades"
            return self.upstream_url

    def id(self):
        """An upload that exists (the run's own DELETEs may remove one)."""
        base, key = os.environ["MARKETD_BASE"], os.environ["MARKETD_ADMIN_KEY"]
        with self.lock:
            if self.upload_id is not None:
                r = requests.get(f"{base}/api/v1/uploads/{self.upload_id}", headers={"X-API-Key": key}, timeout=30)
                if r.status_code == 404:
                    self.upload_id = None
            if self.upload_id is None:
                r = requests.post(
                    base + "/api/v1/uploads",
                    params={"format": "point-cloud", "name": "schemathesis"},
                    data=b"0,0\n1,0\n0,1\n",
                    headers={"X-API-Key": key, "Content-Type": "text/csv"},
                    timeout=30,
                )
                r.raise_for_status()
                self.upload_id = r.json()["id"]
            return self.upload_id


UPLOAD = UPSTREAM = Lazy()

# A closed local port: a connector started on it retries, reaching nothing.
NOWHERE_WS = "ws://127.0.0.1:9/"
NOWHERE_HTTP = "http://127.0.0.1:9/"
# Streams per connection (marketd-sources venues::binance).
MAX_STREAMS = {"binance": 1024, "binance_futures": 200}
PATHS = {"records": "$.data[*]", "price": "$.p", "symbol": "$.s", "size": "$.q", "ts": "$.t",
         "trade_id": "$.id", "side": "$.side"}


def no_redacted(section):
    if isinstance(section, dict):
        for k, v in section.items():
            if v == REDACTED:
                section[k] = "x"


def repair_connector(body):
    if not isinstance(body, dict):
        return
    no_redacted(body.get("auth"))
    no_redacted(body.get("headers"))
    if body.get("kind") == "rest":
        body["url"] = UPSTREAM.url()
        mapping = body.get("mapping")
        if isinstance(mapping, dict):
            for field, path in PATHS.items():
                if isinstance(mapping.get(field), str):
                    mapping[field] = path
    elif body.get("kind") == "websocket":
        body["url"] = NOWHERE_WS
        if body.get("rest_url") is not None:
            body["rest_url"] = NOWHERE_HTTP
        limit = MAX_STREAMS.get(body.get("venue"))
        symbols, channels = body.get("symbols"), body.get("channels")
        if limit and isinstance(symbols, list) and isinstance(channels, list) and channels:
            del symbols[max(1, limit // len(channels)):]


# Small documents of the upload formats (marketd-tda input), as text: the
# body is a string in the spec. DIPHA's magic number is not text, so a
# positive DIPHA case uploads a distance matrix instead; Ripser's binary
# format takes four zero bytes (one distance, 0).
UPLOADS = {
    "point-cloud": "0,0\n1,0\n0,1\n",
    "distance-matrix": "0 1 2\n1 0 1\n2 1 0\n",
    "distance": "0 1\n1 0\n",
    "lower-distance": "1\n2 1\n",
    "upper-distance": "1 2\n1\n",
    "sparse": "0 1 1.0\n1 2 2.0\n",
    "binary": "\0\0\0\0",
}

SERIES = {"/api/v1/prices/history", "/api/v1/bars", "/api/v1/indicators/moving-average", "/api/v1/tda/signals"}
TDA = {"/api/v1/tda/vietoris-rips": "vietoris-rips", "/api/v1/tda/summaries": "summaries",
       "/api/v1/tda/distance": "distance", "/api/v1/jobs": None}
CONNECTORS = {"/api/v1/connectors", "/api/v1/connectors/test", "/api/v1/connectors/{id}"}


def whole_numbers(value):
    """Integral floats as integers: JSON Schema counts 3.0 as an integer,
    the server's integer fields (serde, `as_u64`) read only 3."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**64:
        return int(value)
    if isinstance(value, list):
        return [whole_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: whole_numbers(v) for k, v in value.items()}
    return value


def repair(case):
    method, path = case.operation.method.upper(), case.operation.path
    if isinstance(case.query, dict):
        case.query = whole_numbers(case.query)
    if isinstance(case.body, (dict, list)):
        case.body = whole_numbers(case.body)
    if method == "GET" and path in SERIES:
        order_range(case.query)
    elif method == "POST" and path in TDA:
        repair_tda(case.body, TDA[path])
    elif method == "POST" and path == "/api/v1/uploads" and isinstance(case.query, dict):
        if case.query.get("format") == "dipha":
            case.query["format"] = "distance-matrix"
        fmt = case.query.get("format")
        if fmt in UPLOADS:
            case.body = UPLOADS[fmt]
    elif method in ("POST", "PUT") and path in CONNECTORS:
        repair_connector(case.body)


@schemathesis.hook
def before_call(context, case, kwargs):
    """Repairs a positive case right before it is sent, in every phase
    (stateful steps and value substitutions included)."""
    meta = case.meta
    if meta is not None and meta.generation.mode.is_positive:
        repair(case)


@schemathesis.hook
def filter_case(context, case):
    """Drops negative uploads whose body is not text: the body of a
    `text/csv` upload goes on the wire as text whatever its JSON type (a
    generated 0 is sent as the document "0"), so no type change can make it
    invalid."""
    meta = case.meta
    if meta is None or meta.generation.mode.is_positive:
        return True
    if case.operation.method.upper() == "POST" and case.operation.path == "/api/v1/uploads":
        return not isinstance(case.body, (int, float, bool, list, dict, type(None)))
    return True
