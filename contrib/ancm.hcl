# /etc/ancm/ancm.hcl: ancmd's config file. Every key, with its default and
# what a reload (systemctl reload ancmd) does with a change, is in
# docs/configuration.md (/usr/share/doc/ancm/configuration.md when
# installed from the package).
#
# Check a change before reloading:
#
#   ancmd validate -c /etc/ancm/ancm.hcl && systemctl reload ancmd

# The proxy. Use "0.0.0.0:80" to serve other hosts (ancmd then needs
# CAP_NET_BIND_SERVICE, or a port above 1023).
listen = "127.0.0.1:8080"

# The unit's StateDirectory: state.db, the control socket ancm.sock
# (where ancmctl looks by default), captured logs.
state_dir = "/var/lib/ancm"

log_level  = "info" # trace|debug|info|warn|error; applied on reload
log_format = "text" # or "json"
access_log = false  # one log line per proxied request

# Prometheus metrics at http://127.0.0.1:9100/metrics; "" serves none.
# See "Metrics" in operations.md.
# metrics_listen = "127.0.0.1:9100"

# Apps: one block each. Apps can also be added at run time with
# `ancmctl apply -f FILE`; those are kept in state.db.
#
# app "hello" {
#   command     = "/srv/hello/hello"
#   args        = ["--port", "$PORT"]
#   dir         = "/srv/hello"
#   path_prefix = "/"
#   health {
#     path = "/healthz"
#   }
# }
