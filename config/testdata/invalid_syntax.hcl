app "hello" {
  command = "./hello
}
