package client

import (
	"errors"
	"testing"
)

func TestParseAddress(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Address
		bad  bool
	}{
		{in: "unix:///run/ancm.sock", want: Address{Network: "unix", Path: "/run/ancm.sock"}},
		{in: "/run/ancm.sock", want: Address{Network: "unix", Path: "/run/ancm.sock"}},
		{in: "tcp://10.0.0.5:7070", want: Address{Network: "tcp", Path: "10.0.0.5:7070"}},
		{in: "tcp://[::1]:7070", want: Address{Network: "tcp", Path: "[::1]:7070"}},
		{in: "127.0.0.1:7070", want: Address{Network: "tcp", Path: "127.0.0.1:7070"}},
		{in: "unix://", bad: true},
		{in: "tcp://host", bad: true},
		{in: "tcp://host:http", bad: true},
		{in: "http://x", bad: true},
		{in: "https://ancm.example.com:7070", bad: true},
		{in: "host:port", bad: true},
		{in: "relative/ancm.sock", bad: true},
		{in: "", bad: true},
	} {
		got, err := ParseAddress(tc.in)
		if tc.bad {
			if !errors.Is(err, ErrBadAddress) {
				t.Errorf("ParseAddress(%q) = %v, %v; want ErrBadAddress", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseAddress(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}
