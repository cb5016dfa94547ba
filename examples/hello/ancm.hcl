# The hello example behind ancmd. From the repository root:
#
#   go run ./cmd/ancmd -c examples/hello/ancm.hcl
#   curl http://127.0.0.1:8080/        # Hello from ancm
#   curl http://127.0.0.1:8080/env
#
# listen, control and state_dir keep their defaults (127.0.0.1:8080 and
# /var/lib/ancm). dir defaults to this file's directory.

app "hello" {
  # go run compiles first, hence the long startup_timeout. For production,
  # build the binary and set command = "./hello".
  command         = "go"
  args            = ["run", "."]
  startup_timeout = "120s"

  health {
    path = "/healthz"
  }
}
