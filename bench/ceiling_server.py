"""The ceiling for intake: a bare aiohttp endpoint that only verifies HMAC-SHA256 and parses JSON."""

import hashlib
import hmac
import json
import sys

from aiohttp import web

SECRET = sys.argv[2].encode()


async def hook(request: web.Request) -> web.Response:
    body = await request.read()
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers.get("X-Hub-Signature-256", "")):
        return web.Response(status=401)
    json.loads(body)
    return web.Response(status=202)


app = web.Application(client_max_size=26 * 1024 * 1024)
app.router.add_post("/webhooks/github", hook)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
