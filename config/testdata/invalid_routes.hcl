app "a" {
  command = "./a"
}

app "b" {
  command     = "./b"
  path_prefix = "/"
}

app "c" {
  command = "./c"
  hosts   = ["*.example.com", "x.example.com"]
}

app "d" {
  command = "./d"
  hosts   = ["*.example.com"]
}

app "a" {
  command = "./a2"
}
