app "hello" {
  command = "./hello"
}
