lsiten = "127.0.0.1:8080"

app "hello" {
  command = "./hello"
  procesess = 2
  health {
    path = "/healthz"
    timeout = "1s"
  }
  stdout_log = { enabled = true }
  healthcheck {}
}
