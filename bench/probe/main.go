// Command probe takes the timings of bench/run.sh that a shell loop of
// curl would blur: each curl costs a few milliseconds of process start,
// as much as some of the targets. Every subcommand prints one number of
// milliseconds on stdout, or fails with a reason on stderr.
//
//	probe freeport [N]                  N (1) distinct free TCP ports on
//	                                    127.0.0.1, below the ephemeral range
//	probe exec PORT CMD [ARG...]        start CMD with PORT in its env, poll
//	                                    http://127.0.0.1:PORT/ until 200;
//	                                    ms from exec to that 200; then SIGTERM
//	probe cold URL                      GET URL until it stops answering 404
//	                                    (the route is not published yet);
//	                                    ms of that first non-404 request,
//	                                    which must be 200
//	probe crash PID URL                 SIGKILL PID, poll URL until 200; ms
//	probe route URL ADDR FILE           send the one app of FILE (HCL) to
//	                                    the control plane at ADDR with
//	                                    ApplyApp while polling URL; prints
//	                                    "A B": ms from sending the RPC to the
//	                                    start of the first request that is
//	                                    not a 404, and ms the RPC took
//
// Polls use a fresh connection each time, pause 200µs between tries and
// give up after 30s.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ancm-dev/ancm/api/client"
	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
	"github.com/ancm-dev/ancm/config"
)

const (
	pollPause = 200 * time.Microsecond
	giveUp    = 30 * time.Second
)

var httpClient = &http.Client{
	Timeout:   giveUp,
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
}

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: probe freeport|exec|cold|crash|route ..."))
	}
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "freeport":
		err = freeport(args)
	case "exec":
		err = need(args, 2, func() error { return execUntil200(args[0], args[1:]) })
	case "cold":
		err = need(args, 1, func() error { return cold(args[0]) })
	case "crash":
		err = need(args, 2, func() error { return crash(args[0], args[1]) })
	case "route":
		err = need(args, 3, func() error { return route(args[0], args[1], args[2]) })
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func need(args []string, n int, f func() error) error {
	if len(args) < n {
		return fmt.Errorf("%s needs %d arguments", os.Args[1], n)
	}
	return f()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "probe:", err)
	os.Exit(1)
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64)
}

// get does one GET and returns its status, the body drained.
func get(url string) (int, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// pollUntil calls ok until it returns true or giveUp passes.
func pollUntil(what string, ok func() bool) error {
	deadline := time.Now().Add(giveUp)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: gave up after %s", what, giveUp)
		}
		time.Sleep(pollPause)
	}
	return nil
}

// freeport prints n distinct free TCP ports of 127.0.0.1 (n from args,
// default 1), picked at random below the kernel's ephemeral range: a
// port from that range, free when picked, can be taken as the local port
// of an outgoing connection (nginx to its upstream, a client) before the
// server it was picked for binds it.
func freeport(args []string) error {
	n := 1
	if len(args) > 0 {
		var err error
		if n, err = strconv.Atoi(args[0]); err != nil || n < 1 {
			return fmt.Errorf("freeport: bad count %q", args[0])
		}
	}
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				low = v
			}
		}
	}
	if low <= 12000 {
		return fmt.Errorf("freeport: the ephemeral range starts at %d, no room below it", low)
	}
	seen := map[int]bool{}
	for tries := 0; len(seen) < n; tries++ {
		if tries > 1000 {
			return errors.New("freeport: no free port found")
		}
		p := 10000 + rand.IntN(low-10000)
		if seen[p] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		l.Close()
		seen[p] = true
		fmt.Println(p)
	}
	return nil
}

func execUntil200(port string, argv []string) error {
	url := "http://127.0.0.1:" + port + "/"
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "PORT="+port)
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	var took time.Duration
	err := pollUntil(url, func() bool {
		code, _ := get(url)
		took = time.Since(start)
		return code == http.StatusOK
	})
	if err != nil {
		return err
	}
	fmt.Println(ms(took))
	return nil
}

func cold(url string) error {
	var took time.Duration
	var code int
	err := pollUntil(url, func() bool {
		t := time.Now()
		c, err := get(url)
		took, code = time.Since(t), c
		return err == nil && c != http.StatusNotFound
	})
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("%s: status %d", url, code)
	}
	fmt.Println(ms(took))
	return nil
}

func crash(pidArg, url string) error {
	pid, err := strconv.Atoi(pidArg)
	if err != nil || pid <= 1 {
		return fmt.Errorf("bad pid %q", pidArg)
	}
	start := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return err
	}
	var took time.Duration
	err = pollUntil(url, func() bool {
		code, _ := get(url)
		took = time.Since(start)
		return code == http.StatusOK
	})
	if err != nil {
		return err
	}
	fmt.Println(ms(took))
	return nil
}

func route(url, addr, file string) error {
	src, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	apps, err := config.ParseApps(src, file)
	if err != nil {
		return err
	}
	if len(apps) != 1 {
		return fmt.Errorf("%s: want one app, have %d", file, len(apps))
	}
	conn, err := client.Dial(addr, client.TLSFiles{})
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), giveUp)
	defer cancel()
	svc := ancmv1.NewAppServiceClient(conn)
	// One dry run first, so that the connection is up before the clock starts.
	if _, err := svc.ApplyApp(ctx, &ancmv1.ApplyAppRequest{App: apps[0].Proto(), DryRun: true}); err != nil {
		return fmt.Errorf("dry run: %w", err)
	}

	type hit struct {
		at   time.Time
		code int
		err  error
	}
	found := make(chan hit, 1)
	start := time.Now()
	go func() {
		for time.Since(start) < giveUp && ctx.Err() == nil {
			t := time.Now()
			code, err := get(url)
			if err == nil && code != http.StatusNotFound {
				found <- hit{at: t, code: code}
				return
			}
			time.Sleep(pollPause)
		}
		found <- hit{err: fmt.Errorf("%s: still 404 after %s", url, giveUp)}
	}()
	if _, err := svc.ApplyApp(ctx, &ancmv1.ApplyAppRequest{App: apps[0].Proto()}); err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	applied := time.Since(start)
	h := <-found
	if h.err != nil {
		return h.err
	}
	if h.code != http.StatusOK {
		return fmt.Errorf("%s: status %d", url, h.code)
	}
	fmt.Println(ms(h.at.Sub(start)), ms(applied))
	return nil
}
