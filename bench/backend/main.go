// Command backend is the app behind every benchmark target: a minimal
// net/http server that answers "/" with the 13-byte body "Hello, World!"
// and "/1m" with 1 MiB. Every other path answers like "/", so that the
// same binary serves an app mounted at any path_prefix. It does not check
// ANCM-Token, so that the benchmark measures the proxy and nothing else.
// It listens on 127.0.0.1:$PORT, or on -addr, and exits on SIGTERM or
// SIGINT.
package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

var (
	hello = []byte("Hello, World!")
	mib   = make([]byte, 1<<20)
)

func main() {
	addr := flag.String("addr", "", "listen address (default 127.0.0.1:$PORT)")
	flag.Parse()
	if *addr == "" {
		port := os.Getenv("PORT")
		if port == "" {
			log.Fatal("backend: set PORT or -addr")
		}
		*addr = "127.0.0.1:" + port
	}
	for i := range mib {
		mib[i] = 'a' + byte(i%26)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"text/plain"}
		h["Content-Length"] = []string{"13"}
		_, _ = w.Write(hello)
	})
	mux.HandleFunc("/1m", func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"application/octet-stream"}
		h["Content-Length"] = []string{strconv.Itoa(len(mib))}
		_, _ = w.Write(mib)
	})

	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		log.Fatalf("backend: %v", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
}
