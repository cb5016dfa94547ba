# Python's built-in static file server behind ancmd: no code at all.
# It serves this directory (index.html). From the repository root:
#
#   go run ./cmd/ancmd -c examples/python-http-server/ancm.hcl
#   curl http://127.0.0.1:8080/
#
# http.server knows nothing of ANCM_TOKEN: it answers anyone who reaches
# 127.0.0.1:$PORT. Fine for a demo, not for an app with secrets; the other
# recipes check the token. Any python3 will do (no third-party module).

app "static" {
  command = "python3"
  args    = ["-m", "http.server", "$PORT", "--bind", "127.0.0.1"]
}
