package config

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string
	}{
		{"1048576", 1 << 20, ""},
		{"100B", 100, ""},
		{"100b", 100, ""},
		{"0", 0, ""},
		{"512KB", 512 << 10, ""},
		{"512K", 512 << 10, ""},
		{"512KiB", 512 << 10, ""},
		{"512kb", 512 << 10, ""},
		{"10MB", 10 << 20, ""},
		{"10M", 10 << 20, ""},
		{"10MiB", 10 << 20, ""},
		{"10 MB", 10 << 20, ""},
		{" 10MB ", 10 << 20, ""},
		{"1GB", 1 << 30, ""},
		{"1G", 1 << 30, ""},
		{"1GiB", 1 << 30, ""},
		{"8589934591G", 8589934591 << 30, ""},
		{"", 0, "want a whole number"},
		{"MB", 0, "want a whole number"},
		{"-1", 0, "want a whole number"},
		{"1.5GB", 0, "unknown unit"},
		{"10XB", 0, "unknown unit"},
		{"10TB", 0, "unknown unit"},
		{"10 M B", 0, "unknown unit"},
		{"8589934592G", 0, "too large"},
		{"99999999999999999999", 0, "too large"},
	} {
		got, err := ParseSize(tc.in)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("ParseSize(%q): %v", tc.in, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseSize(%q) = %d, %v; want error with %q", tc.in, got, err, tc.err)
		case got != tc.want:
			t.Errorf("ParseSize(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 100: "100B", 1024: "1KB", 1536: "1536B", 10 << 20: "10MB", 3 << 30: "3GB"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
		if back, err := ParseSize(FormatSize(n)); err != nil || back != n {
			t.Errorf("ParseSize(FormatSize(%d)) = %d, %v", n, back, err)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"10MB", "512KB", "1GB", "100B", "1048576", "1 kib", "", "-1", "1e3", "9223372036854775807", "9223372036854775807K", "10\x00MB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d, negative", s, n)
		}
		if back, err := ParseSize(FormatSize(n)); err != nil || back != n {
			t.Fatalf("ParseSize(FormatSize(%d)) = %d, %v", n, back, err)
		}
	})
}

func TestParseSignal(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want syscall.Signal
	}{
		{"SIGTERM", syscall.SIGTERM},
		{"TERM", syscall.SIGTERM},
		{"sigterm", syscall.SIGTERM},
		{"term", syscall.SIGTERM},
		{"SIGINT", syscall.SIGINT},
		{"QUIT", syscall.SIGQUIT},
		{"SIGHUP", syscall.SIGHUP},
		{"SIGKILL", syscall.SIGKILL},
		{"SIGUSR1", syscall.SIGUSR1},
		{"winch", syscall.SIGWINCH},
	} {
		got, err := ParseSignal(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "SIG", "15", "SIGFOO", "TERMINATE", "SIG TERM"} {
		if got, err := ParseSignal(in); err == nil || !errors.Is(err, errUnknownSignal) {
			t.Errorf("ParseSignal(%q) = %v, %v; want an error", in, got, err)
		}
	}
	if c, err := canonicalSignal("int"); err != nil || c != "SIGINT" {
		t.Errorf("canonicalSignal(int) = %q, %v", c, err)
	}
}
