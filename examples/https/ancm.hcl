# Two hosts over HTTPS, each with its own certificate, HTTP/2 on, and the
# plain listener redirecting to https. From the repository root:
#
#   examples/https/make-certs.sh          # a local CA and two certificates in examples/https/tls
#   go run ./cmd/ancmd -c examples/https/ancm.hcl
#   curl --cacert examples/https/tls/ca.pem --resolve shop.example.com:8443:127.0.0.1 https://shop.example.com:8443/
#   curl -i --resolve blog.example.com:8080:127.0.0.1 http://blog.example.com:8080/   # 308 to https
#
# For certificates from Let's Encrypt instead, replace the certificate
# blocks with an acme block (the https listener must then be on port 443,
# reachable from the CA):
#
#   acme {
#     email = "ops@example.com"
#   }

listen    = "127.0.0.1:8080"
state_dir = "state"

https {
  listen = "127.0.0.1:8443"
  certificate {
    cert_file = "tls/shop.example.com.crt"
    key_file  = "tls/shop.example.com.key"
  }
  certificate {
    cert_file = "tls/blog.example.com.crt"
    key_file  = "tls/blog.example.com.key"
  }
  http2         = true
  redirect_http = true
}

app "shop" {
  command         = "go"
  args            = ["run", "."]
  dir             = "../hello"
  hosts           = ["shop.example.com"]
  startup_timeout = "120s"
}

app "blog" {
  command         = "go"
  args            = ["run", "."]
  dir             = "../hello"
  hosts           = ["blog.example.com"]
  startup_timeout = "120s"
}
