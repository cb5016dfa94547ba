# Every key of the config file, none at its default.
listen     = "0.0.0.0:8081"
control    = "tcp://127.0.0.1:9443"
state_dir  = "state"
log_level  = "debug"
log_format = "json"
access_log = true
insecure   = false
max_connections = 5000
send_timeout    = "30s"

control_tls {
  cert_file      = "tls/server.pem"
  key_file       = "tls/server.key"
  client_ca_file = "/etc/ancm/ca.pem"
}

app "hello" {
  command = "./bin/hello"
  args    = ["--port", "$PORT", "--greeting=$${GREETING}"]
  dir     = "apps/hello"
  strip_prefix = true
  env     = { GREETING = "hi", "LOG_LEVEL" = "debug" }

  hosts       = ["Hello.Example.com", "*.hello.example.com"]
  path_prefix = "/hello/"

  start                  = "eager"
  processes              = 3
  startup_timeout        = "30s"
  shutdown_timeout       = "5s"
  request_timeout        = "1m30s"
  rapid_fails_per_minute = 0
  stop_signal            = "int"
  queue_size             = 0
  offline_file           = ""
  error_detail           = true
  compat                 = "aspnetcore"

  health {
    path     = "/healthz"
    interval = "2s"
  }

  stdout_log {
    enabled   = false
    max_size  = "512KB"
    max_files = 10
  }

  rollout {
    strategy      = "recreate"
    max_surge     = 2
    min_ready     = "500ms"
    drain_timeout = "1m"
  }
}

app "api" {
  command     = "/usr/bin/api"
  dir         = "/srv/api"
  path_prefix = "/api"
}

# Same prefix as "api", but only for one host: not a conflict.
app "api-beta" {
  command     = "/usr/bin/api"
  hosts       = ["beta.example.com"]
  path_prefix = "/api"
}
