listen = 8080
access_log = "yes"

app "hello" {
  command   = ["./hello"]
  processes = "3"
  hosts     = "hello.example.com"
  health {
    interval = 10
  }
}
