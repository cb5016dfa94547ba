# A plain ASGI app served by uvicorn behind ancmd. From the repository root:
#
#   go run ./cmd/ancmd -c examples/uvicorn-asgi/ancm.hcl
#   curl http://127.0.0.1:8080/
#
# Needs Debian's python3-uvicorn; /usr/bin/python3 is the interpreter that
# has it, whatever python3 comes first on PATH (pyenv, a venv).
# --no-proxy-headers: uvicorn would otherwise believe X-Forwarded-For from
# any local peer; app.py trusts it only with the right ANCM-Token.

app "asgi" {
  command = "/usr/bin/python3"
  args    = ["-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", "$PORT", "--no-proxy-headers"]

  health {
    path = "/healthz"
  }
}
