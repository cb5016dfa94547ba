// Command hello is the smallest app behind ancmd: it listens where ancmd
// says, checks the ANCM-Token on every request with ancmapp, and stops
// gracefully on SIGTERM.
//
// Run it behind ancmd from the repository root:
//
//	go run ./cmd/ancmd -c examples/hello/ancm.hcl
//	curl http://127.0.0.1:8080/
//
// or alone (it then listens on $ANCM_FALLBACK_ADDR or :8080):
//
//	go run ./examples/hello
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"

	"github.com/ancm-dev/ancm/ancmapp"
)

func main() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "Hello from ancm\n")
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok\n")
	})
	mux.HandleFunc("GET /env", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "ANCM_APP=%s\n", os.Getenv("ANCM_APP"))
		fmt.Fprintf(w, "ANCM_INSTANCE=%s\n", os.Getenv("ANCM_INSTANCE"))
		fmt.Fprintf(w, "ANCM_PATH_BASE=%s\n", os.Getenv("ANCM_PATH_BASE"))
		fmt.Fprintf(w, "client=%s\n", ancmapp.ClientAddr(r))
	})
	// ancmd does not strip the app's path_prefix: an app mounted under
	// "/hello" sees "/hello/env". This one strips it, so that it can be
	// mounted anywhere.
	var h http.Handler = mux
	if base := strings.TrimRight(ancmapp.FromEnv().PathBase, "/"); base != "" {
		h = http.StripPrefix(base, mux)
	}
	if err := ancmapp.ListenAndServe(h); err != nil {
		log.Fatal(err)
	}
}
