package controlplane

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

const (
	// logRing is how many recent lines of an app are kept in memory, for
	// error pages and for tails when capture to files is off.
	logRing = 1000
	// maxLineLen is where a long line is split.
	maxLineLen = 16 << 10
	// logFollowBuffer is how many lines a follower may fall behind before
	// lines are dropped for it (and a marker line says so).
	logFollowBuffer = 1024
	// tailReadLimit is how much of the end of a log file a tail reads.
	tailReadLimit = 4 << 20
	// DefaultTail is the number of lines TailLogs sends when the request
	// leaves tail unset.
	DefaultTail = 10
	// MaxTail caps the lines TailLogs sends first; a larger tail is
	// treated as MaxTail.
	MaxTail = 100000
	// maxMessageBytes bounds the text of one TailLogsResponse, well under
	// gRPC's default 4 MiB message limit; maxMessageLines its lines.
	maxMessageBytes = 1 << 20
	maxMessageLines = 1000
)

// appLog captures the output of an app's instances: into rotated files when
// capture is enabled, into a ring of recent lines always, and out to
// followers.
type appLog struct {
	app      string
	dir      string // state_dir/logs/APP
	enabled  bool
	maxSize  int64
	maxFiles int

	mu    sync.Mutex
	ring  []*ancmv1.LogLine
	next  int
	subs  map[*logSub]struct{}
	files map[uint32]*rotatingFile
}

type logSub struct {
	instance *uint32
	ch       chan *ancmv1.LogLine
	dropped  int
}

func newAppLog(stateDir, app string, enabled bool, maxSize int64, maxFiles int) *appLog {
	return &appLog{
		app:      app,
		dir:      filepath.Join(stateDir, "logs", app),
		enabled:  enabled,
		maxSize:  maxSize,
		maxFiles: maxFiles,
		subs:     make(map[*logSub]struct{}),
		files:    make(map[uint32]*rotatingFile),
	}
}

// path is the log file of an instance.
func (l *appLog) path(instance uint32) string {
	return filepath.Join(l.dir, fmt.Sprintf("%s.%d.log", l.app, instance))
}

// file returns the open log file of an instance, opening it on first use.
func (l *appLog) file(instance uint32) (*rotatingFile, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.enabled {
		return nil, nil
	}
	if f := l.files[instance]; f != nil {
		return f, nil
	}
	if err := os.MkdirAll(l.dir, 0o750); err != nil {
		return nil, err
	}
	f, err := openRotating(l.path(instance), l.maxSize, l.maxFiles)
	if err != nil {
		return nil, err
	}
	l.files[instance] = f
	return f, nil
}

// capture reads lines from r until EOF and records them. It runs in its own
// goroutine per stream; done is called when r is drained.
func (l *appLog) capture(instance uint32, stream string, r io.Reader) {
	f, err := l.file(instance)
	if err != nil {
		l.record(instance, "stderr", []byte(fmt.Sprintf("[ancm: cannot open log file: %v]", err)), true)
	}
	br := bufio.NewReaderSize(r, maxLineLen)
	var rec []byte
	for {
		line, err := br.ReadSlice('\n')
		full := true
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			full = false
		case err != nil && len(line) == 0:
			return
		}
		line = bytes.TrimRight(line, "\r\n")
		now := time.Now()
		if f != nil {
			rec = appendCRI(rec[:0], now, stream, full, line)
			_ = f.write(rec)
		}
		l.record(instance, stream, line, full)
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// appendCRI formats a line as the CRI log format does:
// "2006-01-02T15:04:05.999999999Z07:00 stdout F text\n".
func appendCRI(b []byte, t time.Time, stream string, full bool, line []byte) []byte {
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, ' ')
	b = append(b, stream...)
	if full {
		b = append(b, " F "...)
	} else {
		b = append(b, " P "...)
	}
	b = append(b, line...)
	return append(b, '\n')
}

// parseCRI parses a line written by appendCRI.
func parseCRI(app string, instance uint32, s string) (*ancmv1.LogLine, bool) {
	parts := strings.SplitN(s, " ", 4)
	if len(parts) < 3 {
		return nil, false
	}
	t, err := time.Parse(time.RFC3339Nano, parts[0])
	if err != nil {
		return nil, false
	}
	text := ""
	if len(parts) == 4 {
		text = parts[3]
	}
	return &ancmv1.LogLine{App: app, Instance: instance, Stream: parts[1], Text: text, Time: timestamppb.New(t)}, true
}

func (l *appLog) record(instance uint32, stream string, text []byte, _ bool) {
	ll := &ancmv1.LogLine{App: l.app, Instance: instance, Stream: stream, Text: string(text), Time: timestamppb.Now()}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ring) < logRing {
		l.ring = append(l.ring, ll)
	} else {
		l.ring[l.next] = ll
		l.next = (l.next + 1) % logRing
	}
	for s := range l.subs {
		if s.instance != nil && *s.instance != instance {
			continue
		}
		select {
		case s.ch <- ll:
		default:
			s.dropped++
		}
	}
}

// note records a line of ancm's own about an instance (not written to the
// app's log file), such as why it failed to start.
func (l *appLog) note(instance uint32, text string) {
	l.record(instance, "ancm", []byte(text), true)
}

// recent returns up to n of the most recent lines kept in memory, of one
// instance or of all.
func (l *appLog) recent(instance *uint32, n int) []*ancmv1.LogLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	size := len(l.ring)
	var out []*ancmv1.LogLine
	for i := size - 1; i >= 0 && len(out) < n; i-- {
		ll := l.ring[(l.next+i)%size]
		if instance == nil || ll.GetInstance() == *instance {
			out = append(out, ll)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// tailText returns the last n lines of an instance as text, for error pages
// and events.
func (l *appLog) tailText(instance uint32, n int) []string {
	lines := l.recent(&instance, n)
	out := make([]string, 0, len(lines))
	for _, ll := range lines {
		out = append(out, ll.GetText())
	}
	return out
}

// tail returns the last n lines: from the log files when capture is on (so
// output from before a daemon restart is there too), else from memory.
func (l *appLog) tail(instance *uint32, n int) []*ancmv1.LogLine {
	if !l.enabled {
		return l.recent(instance, n)
	}
	// An app that writes fast rotates its files while they are read: a
	// read can find the current file just emptied and its predecessor
	// renamed away. A short tail is read again, at most twice.
	var all []*ancmv1.LogLine
	for attempt := 0; attempt < 3 && len(all) < n; attempt++ {
		all = all[:0]
		names, _ := filepath.Glob(filepath.Join(l.dir, l.app+".*.log"))
		for _, name := range names {
			idx, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(name), l.app+"."), ".log"), 10, 32)
			if err != nil || (instance != nil && uint32(idx) != *instance) {
				continue
			}
			all = append(all, readTail(l.app, uint32(idx), name, n, l.maxFiles)...)
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].GetTime().AsTime().Before(all[j].GetTime().AsTime()) })
	if len(all) > n {
		all = all[len(all)-n:]
	}
	return all
}

// readTail reads the last n lines of a log file and, when it has fewer, of
// its rotated predecessors.
func readTail(app string, instance uint32, path string, n, maxFiles int) []*ancmv1.LogLine {
	var out []*ancmv1.LogLine
	for i := 0; i <= maxFiles && len(out) < n; i++ {
		p := path
		if i > 0 {
			p = fmt.Sprintf("%s.%d", path, i)
		}
		lines := readFileTail(p, n-len(out))
		parsed := make([]*ancmv1.LogLine, 0, len(lines))
		for _, s := range lines {
			if ll, ok := parseCRI(app, instance, s); ok {
				parsed = append(parsed, ll)
			}
		}
		out = append(parsed, out...)
	}
	return out
}

func readFileTail(path string, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil
	}
	off := max(st.Size()-tailReadLimit, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return nil
	}
	lines := strings.Split(strings.TrimRight(string(buf), "\n"), "\n")
	if off > 0 && len(lines) > 0 {
		lines = lines[1:] // the first is cut
	}
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// follow sends the tail, then every new line until ctx ends.
func (l *appLog) follow(ctx context.Context, instance *uint32, n int, follow bool, closed <-chan struct{}, send func([]*ancmv1.LogLine) error) error {
	var sub *logSub
	if follow {
		sub = &logSub{instance: instance, ch: make(chan *ancmv1.LogLine, logFollowBuffer)}
		l.mu.Lock()
		l.subs[sub] = struct{}{}
		l.mu.Unlock()
		defer func() {
			l.mu.Lock()
			delete(l.subs, sub)
			l.mu.Unlock()
		}()
	}
	if err := sendBounded(l.tail(instance, n), send); err != nil {
		return err
	}
	if sub == nil {
		return nil
	}
	batch := make([]*ancmv1.LogLine, 0, 64)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-closed:
			return nil
		case ll := <-sub.ch:
			batch = append(batch[:0], ll)
			// Send what is queued in one message.
		drain:
			for len(batch) < cap(batch) {
				select {
				case ll := <-sub.ch:
					batch = append(batch, ll)
				default:
					break drain
				}
			}
			l.mu.Lock()
			if sub.dropped > 0 {
				batch = append(batch, &ancmv1.LogLine{App: l.app, Stream: "ancm", Text: fmt.Sprintf("[ancm: %d lines dropped: the reader fell behind]", sub.dropped), Time: timestamppb.Now()})
				sub.dropped = 0
			}
			l.mu.Unlock()
			if err := sendBounded(batch, send); err != nil {
				return err
			}
		}
	}
}

// sendBounded sends lines in messages of at most maxMessageLines lines
// and maxMessageBytes of text (a single longer line, at most maxLineLen,
// goes alone), in order.
func sendBounded(lines []*ancmv1.LogLine, send func([]*ancmv1.LogLine) error) error {
	for len(lines) > 0 {
		n, size := 0, 0
		for n < len(lines) && n < maxMessageLines {
			size += len(lines[n].GetText()) + len(lines[n].GetStream()) + 64 // the other fields, roughly
			if n > 0 && size > maxMessageBytes {
				break
			}
			n++
		}
		if err := send(lines[:n]); err != nil {
			return err
		}
		lines = lines[n:]
	}
	return nil
}

// close closes the log files.
func (l *appLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, f := range l.files {
		_ = f.close()
		delete(l.files, i)
	}
}

// rotatingFile is a log file rotated at maxSize, keeping maxFiles older
// files named PATH.1 (newest) to PATH.N.
type rotatingFile struct {
	path     string
	maxSize  int64
	maxFiles int

	mu   sync.Mutex
	f    *os.File
	size int64
}

func openRotating(path string, maxSize int64, maxFiles int) (*rotatingFile, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &rotatingFile{path: path, maxSize: maxSize, maxFiles: maxFiles, f: f, size: st.Size()}, nil
}

func (r *rotatingFile) write(b []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return os.ErrClosed
	}
	if r.size > 0 && r.size+int64(len(b)) > r.maxSize {
		if err := r.rotateLocked(); err != nil {
			return err
		}
	}
	n, err := r.f.Write(b)
	r.size += int64(n)
	return err
}

func (r *rotatingFile) rotateLocked() error {
	if err := r.f.Close(); err != nil {
		return err
	}
	_ = os.Remove(fmt.Sprintf("%s.%d", r.path, r.maxFiles))
	for i := r.maxFiles - 1; i >= 1; i-- {
		_ = os.Rename(fmt.Sprintf("%s.%d", r.path, i), fmt.Sprintf("%s.%d", r.path, i+1))
	}
	if r.maxFiles > 0 {
		if err := os.Rename(r.path, r.path+".1"); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(r.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		r.f = nil
		return err
	}
	r.f, r.size = f, 0
	return nil
}

func (r *rotatingFile) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
