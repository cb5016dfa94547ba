# Sourced by bench/run.sh and bench/handshake.sh.
# nginx_conf DIR UPSTREAM_PORT SERVERS: writes DIR/nginx.conf, nginx in
# front of the backend on 127.0.0.1:UPSTREAM_PORT (keep-alive upstream
# "backend", no access log, no cap on requests per connection, its files
# under DIR), with the server blocks
# SERVERS; each location includes bench/nginx-location.conf.
nginx_conf() {
	local dir=$1 upstream=$2 servers=$3
	mkdir -p "$dir/logs"
	cat >"$dir/nginx.conf" <<EOF
daemon off;
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	# nginx closes a connection after 1000 requests by default, and h2load
	# does not reconnect: without this its HTTP/2 run stops at 64000
	# requests (12800 req/s in 5 s, whatever nginx could do). ancmd has no
	# such cap.
	keepalive_requests 1000000;
	client_body_temp_path $dir/body;
	proxy_temp_path $dir/proxy;
	fastcgi_temp_path $dir/fastcgi;
	uwsgi_temp_path $dir/uwsgi;
	scgi_temp_path $dir/scgi;
	upstream backend {
		server 127.0.0.1:$upstream;
		keepalive 64;
	}
$servers
}
EOF
}

# nginx_tls_server PORT CERT KEY [PROTOCOLS]: a server block for
# nginx_conf's SERVERS, TLS and HTTP/2 on 127.0.0.1:PORT, with
# ssl_protocols PROTOCOLS when given (nginx 1.22's default stops at
# TLSv1.2), proxying as bench/nginx-location.conf has it.
nginx_tls_server() {
	printf '\tserver {\n\t\tlisten 127.0.0.1:%s ssl http2;\n' "$1"
	[[ -z ${4:-} ]] || printf '\t\tssl_protocols %s;\n' "$4"
	printf '\t\tssl_certificate %s;\n\t\tssl_certificate_key %s;\n' "$2" "$3"
	printf '\t\tlocation / { include %s/bench/nginx-location.conf; }\n\t}\n' "$ROOT"
}
