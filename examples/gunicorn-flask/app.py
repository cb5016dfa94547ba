"""A Flask app behind ancmd, served by gunicorn.

Run by examples/gunicorn-flask/ancm.hcl. By hand:

    PORT=8000 ANCM_TOKEN=secret /usr/bin/gunicorn --bind 127.0.0.1:8000 app:app
    curl -H 'ANCM-Token: secret' http://127.0.0.1:8000/
"""

import hmac
import os

from flask import Flask, abort, request
from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware

# Empty when the app runs without ancmd: then no token is required and
# forwarded headers are not trusted.
TOKEN = os.environ.get("ANCM_TOKEN", "")
# ancmd does not strip the app's path_prefix; mounting the app under it
# (below) sets SCRIPT_NAME, so routes and url_for work under any prefix.
PATH_BASE = os.environ.get("ANCM_PATH_BASE", "/").rstrip("/")

app = Flask(__name__)


@app.before_request
def check_token():
    """Answer 400 to anything that did not come through ancmd."""
    if not TOKEN:
        return None
    got = request.headers.get("ANCM-Token", "")
    if not hmac.compare_digest(got.encode(), TOKEN.encode()):
        abort(400)
    return None


def client_addr():
    """The client's address: the last X-Forwarded-For entry, which ancmd
    appended, but only behind ancmd (the token was checked above)."""
    xff = request.headers.get("X-Forwarded-For", "")
    if TOKEN and xff:
        return xff.split(",")[-1].strip()
    return request.remote_addr


@app.get("/")
def index():
    return "Hello from ancm (gunicorn + Flask)\n", 200, {"Content-Type": "text/plain"}


@app.get("/healthz")
def healthz():
    return "ok\n", 200, {"Content-Type": "text/plain"}


@app.get("/env")
def env():
    lines = [f"{k}={os.environ.get(k, '')}" for k in ("ANCM_APP", "ANCM_INSTANCE", "ANCM_PATH_BASE")]
    lines.append(f"client={client_addr()}")
    lines.append(f"script_name={request.script_root}")
    return "\n".join(lines) + "\n", 200, {"Content-Type": "text/plain"}


if PATH_BASE:
    app.wsgi_app = DispatcherMiddleware(NotFound(), {PATH_BASE: app.wsgi_app})
