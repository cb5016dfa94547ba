package controlplane

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

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

// TestTailInBoundedMessages checks that a long tail goes out in messages
// well under gRPC's 4 MiB limit, in order and whole (issue 10, finding 9:
// `--tail 200000` failed as one message over 4 MiB).
func TestTailInBoundedMessages(t *testing.T) {
	l := newAppLog(t.TempDir(), "app", true, 64<<20, 1)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { l.capture(0, "stdout", r); close(done) }()
	line := strings.Repeat("x", 90)
	for i := range 100000 {
		fmt.Fprintf(w, "%06d %s\n", i, line)
	}
	w.Close()
	<-done
	defer l.close()

	var msgs, lines int
	last := -1
	err = l.follow(context.Background(), nil, MaxTail, false, nil, func(batch []*ancmv1.LogLine) error {
		msgs++
		if size := proto.Size(&ancmv1.TailLogsResponse{Lines: batch}); size > maxMessageBytes+64<<10 {
			t.Fatalf("message %d is %d bytes", msgs, size)
		}
		for _, ll := range batch {
			var n int
			if _, err := fmt.Sscanf(ll.GetText(), "%06d", &n); err != nil || n != last+1 && last >= 0 {
				t.Fatalf("line %q after %d", ll.GetText(), last)
			}
			last = n
			lines++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The tail reads at most tailReadLimit of the file (lines of about
	// 140 bytes with their time and stream): all it holds, through the
	// last line, in many messages.
	if lines < tailReadLimit/200 || last != 99999 || msgs < lines/maxMessageLines {
		t.Errorf("%d lines in %d messages, last %d", lines, msgs, last)
	}
}
