package controlplane

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

func TestLogCaptureRotateAndTail(t *testing.T) {
	dir := t.TempDir()
	l := newAppLog(dir, "app", true, 2048, 2)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { l.capture(0, "stdout", r); close(done) }()
	for i := range 200 {
		fmt.Fprintf(w, "line %03d\n", i)
	}
	fmt.Fprint(w, "no newline at the end")
	w.Close()
	<-done
	l.close()

	names, _ := filepath.Glob(filepath.Join(dir, "logs", "app", "app.0.log*"))
	if len(names) != 3 {
		t.Fatalf("log files = %v, want the current one and 2 rotated", names)
	}
	for _, n := range names {
		st, _ := os.Stat(n)
		if st.Size() > 2048 {
			t.Errorf("%s is %d bytes, over max_size", n, st.Size())
		}
	}
	tail := l.tail(nil, 5)
	if len(tail) != 5 || tail[4].GetText() != "no newline at the end" || tail[3].GetText() != "line 199" || tail[0].GetStream() != "stdout" {
		t.Errorf("tail = %v", tail)
	}
	// A tail longer than the current file reads the rotated ones too.
	long := l.tail(nil, 60)
	if len(long) != 60 || long[59].GetText() != "no newline at the end" {
		t.Errorf("long tail has %d lines", len(long))
	}
	for i := 1; i < len(long); i++ {
		if long[i].GetTime().AsTime().Before(long[i-1].GetTime().AsTime()) {
			t.Fatalf("tail out of order at %d", i)
		}
	}
}

func TestLogLongLinesSplit(t *testing.T) {
	l := newAppLog(t.TempDir(), "app", false, 0, 0)
	r, w, _ := os.Pipe()
	done := make(chan struct{})
	go func() { l.capture(1, "stderr", r); close(done) }()
	fmt.Fprintln(w, strings.Repeat("x", maxLineLen*2+10))
	w.Close()
	<-done
	lines := l.recent(nil, 10)
	if len(lines) != 3 || len(lines[0].GetText()) != maxLineLen || len(lines[2].GetText()) != 10 {
		t.Errorf("got %d lines", len(lines))
	}
}

func TestLogFollow(t *testing.T) {
	l := newAppLog(t.TempDir(), "app", false, 0, 0)
	l.note(0, "before")
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan []*ancmv1.LogLine, 10)
	done := make(chan error, 1)
	go func() {
		done <- l.follow(ctx, nil, 10, true, nil, func(lines []*ancmv1.LogLine) error {
			got <- lines
			return nil
		})
	}()
	first := <-got
	if len(first) != 1 || first[0].GetText() != "before" {
		t.Fatalf("tail = %v", first)
	}
	// The follower is subscribed before the tail is sent, so this line is
	// not lost.
	waitUntil(t, time.Second, func() bool { l.mu.Lock(); defer l.mu.Unlock(); return len(l.subs) == 1 })
	l.note(0, "after")
	select {
	case next := <-got:
		if next[0].GetText() != "after" {
			t.Errorf("followed %v", next)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("followed line did not arrive")
	}
	cancel()
	if err := <-done; err == nil {
		t.Errorf("follow ended with nil after cancel, want ctx error")
	}
}
