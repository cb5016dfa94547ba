# A Flask app served by gunicorn behind ancmd. From the repository root:
#
#   go run ./cmd/ancmd -c examples/gunicorn-flask/ancm.hcl
#   curl http://127.0.0.1:8080/
#
# Needs Debian's gunicorn and python3-flask. /usr/bin/gunicorn runs
# /usr/bin/python3, which has them, whatever python3 comes first on PATH
# (pyenv, a venv). With a pip-installed gunicorn, use command = "gunicorn".

app "flask" {
  command = "/usr/bin/gunicorn"
  # SIGTERM makes gunicorn stop gracefully; keep its graceful timeout below
  # shutdown_timeout (10s) so that it finishes before ancmd sends SIGKILL.
  args = ["--bind", "127.0.0.1:$PORT", "--graceful-timeout", "8", "app:app"]

  health {
    path = "/healthz"
  }
}
