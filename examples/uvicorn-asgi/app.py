"""A plain ASGI app (no framework) behind ancmd, served by uvicorn.

Run by examples/uvicorn-asgi/ancm.hcl. By hand:

    PORT=8000 ANCM_TOKEN=secret /usr/bin/python3 -m uvicorn app:app \
        --host 127.0.0.1 --port 8000 --no-proxy-headers
    curl -H 'ANCM-Token: secret' http://127.0.0.1:8000/
"""

import hmac
import os

# Empty when the app runs without ancmd: then no token is required and
# forwarded headers are not trusted.
TOKEN = os.environ.get("ANCM_TOKEN", "").encode()
# ancmd does not strip the app's path_prefix: the app sees the full path.
PATH_BASE = os.environ.get("ANCM_PATH_BASE", "/").rstrip("/")


def header(scope, name):
    """The last value of a request header, as bytes ("" when absent)."""
    value = b""
    for key, val in scope["headers"]:
        if key == name:
            value = val
    return value


def token_ok(scope):
    if not TOKEN:
        return True
    got = [val for key, val in scope["headers"] if key == b"ancm-token"]
    return len(got) == 1 and hmac.compare_digest(got[0], TOKEN)


def client_addr(scope):
    """The last X-Forwarded-For entry (ancmd appended it), trusted only
    behind ancmd; else the peer address."""
    xff = header(scope, b"x-forwarded-for").decode("latin-1")
    if TOKEN and xff:
        return xff.split(",")[-1].strip()
    client = scope.get("client")
    return client[0] if client else ""


async def send_text(send, status, text):
    body = text.encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return  # websockets are not handled here
    if not token_ok(scope):
        await send_text(send, 400, "Bad Request: missing or wrong ANCM-Token\n")
        return

    path = scope["path"]
    if PATH_BASE and (path == PATH_BASE or path.startswith(PATH_BASE + "/")):
        path = path[len(PATH_BASE):] or "/"
    if path == "/":
        await send_text(send, 200, "Hello from ancm (uvicorn, plain ASGI)\n")
    elif path == "/healthz":
        await send_text(send, 200, "ok\n")
    elif path == "/env":
        lines = [f"{k}={os.environ.get(k, '')}" for k in ("ANCM_APP", "ANCM_INSTANCE", "ANCM_PATH_BASE")]
        lines.append(f"client={client_addr(scope)}")
        await send_text(send, 200, "\n".join(lines) + "\n")
    else:
        await send_text(send, 404, "Not Found\n")
