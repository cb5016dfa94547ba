package ancmapp_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/ancm-dev/ancm/ancmapp"
)

// An app behind ancmd is one call: it listens where ancmd says, checks the
// token, and stops gracefully on SIGTERM.
func ExampleListenAndServe() {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello, %s\n", ancmapp.ClientAddr(r))
	})
	if err := ancmapp.ListenAndServe(mux); err != nil {
		log.Fatal(err)
	}
}

// Env.Middleware checks the token that ancmd puts on every request and
// restores what the proxy hid: the client's address, scheme and host.
func ExampleEnv_Middleware() {
	env := ancmapp.Env{Token: "s3cret", PathBase: "/shop"}
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s://%s%s from %s, token header %q",
			ancmapp.PathBase(r), ancmapp.Scheme(r), r.Host, r.URL.Path, ancmapp.ClientAddr(r), r.Header.Get(ancmapp.HeaderToken))
	})
	srv := httptest.NewServer(env.Middleware(app))
	defer srv.Close()

	for _, token := range []string{"", "guess", "s3cret"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/shop/cart", nil)
		if token != "" {
			req.Header.Set(ancmapp.HeaderToken, token)
		}
		req.Header.Set("X-Forwarded-For", "198.51.100.7")
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-Host", "example.com")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %s\n", resp.StatusCode, body)
	}
	// Output:
	// 400 Bad Request: missing or wrong ANCM-Token
	//
	// 400 Bad Request: missing or wrong ANCM-Token
	//
	// 200 /shop https://example.com/shop/cart from 198.51.100.7, token header ""
}

// Without ANCM_TOKEN the app is not behind ancmd: requests pass untouched and
// forwarded headers are not trusted.
func ExampleEnv_Middleware_notBehindANCM() {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s from %s", ancmapp.Scheme(r), ancmapp.ClientAddr(r))
	})
	srv := httptest.NewServer(ancmapp.Env{}.Middleware(app))
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("X-Forwarded-For", "198.51.100.7")
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("%d %s\n", resp.StatusCode, body)
	// Output:
	// 200 http from 127.0.0.1
}

func ExampleFromEnv() {
	env := ancmapp.FromEnv()
	if env.Behind {
		fmt.Printf("app %s instance %d on %s under %q\n", env.App, env.Instance, env.Addr, env.PathBase)
	} else {
		fmt.Printf("not behind ancmd, listening on %s\n", env.Addr)
	}
}
