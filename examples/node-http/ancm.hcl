# A Node.js app with the http module behind ancmd. From the repository root:
#
#   go run ./cmd/ancmd -c examples/node-http/ancm.hcl
#   curl http://127.0.0.1:8080/
#
# Needs node (Debian's nodejs package, 18 or later).

app "node" {
  command = "node"
  args    = ["server.js"]

  health {
    path = "/healthz"
  }
}
