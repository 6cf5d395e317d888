#!/usr/bin/env python3
"""Independent oracle for the OKX request signature used by
`connectors::auth` tests (standard library only).

OKX signs `timestamp + METHOD + requestPath + body` with HMAC-SHA256 under the
API secret and sends the base64 of the digest as `OK-ACCESS-SIGN`. This script
prints the expected value for the example of OKX's documentation
(GET /api/v5/account/balance?ccy=BTC at 2020-12-08T09:08:57.715Z, empty body)
under the test secret below; the Rust test commits the printed value.

Run: python3 crates/marketd-sources/tests/oracles/okx_signature.py
"""
import base64
import hashlib
import hmac

SECRET = "22582BD0CFF14C41EDBF1AB98506286D"
TIMESTAMP = "2020-12-08T09:08:57.715Z"
METHOD = "GET"
REQUEST_PATH = "/api/v5/account/balance?ccy=BTC"
BODY = ""

prehash = TIMESTAMP + METHOD + REQUEST_PATH + BODY
digest = hmac.new(SECRET.encode(), prehash.encode(), hashlib.sha256).digest()
print(base64.b64encode(digest).decode())
