package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// MinLogMaxSize is the smallest stdout_log.max_size accepted.
const MinLogMaxSize = 1 << 10

// sizeUnits maps a size suffix, lower case, to its multiplier. Every unit is
// 1024-based, as in nginx: "KB" and "KiB" are both 1024 bytes.
var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"k":   1 << 10,
	"kb":  1 << 10,
	"kib": 1 << 10,
	"m":   1 << 20,
	"mb":  1 << 20,
	"mib": 1 << 20,
	"g":   1 << 30,
	"gb":  1 << 30,
	"gib": 1 << 30,
}

// ParseSize parses a byte size: a whole number of bytes ("1048576", "100B")
// or a whole number with one of the units K, KB, KiB, M, MB, MiB, G, GB,
// GiB, in any case, optionally after a space. All units are 1024-based.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("size %q: want a whole number of bytes, optionally with a unit (KB, MB, GB)", s)
	}
	unit := strings.ToLower(strings.TrimLeft(t[i:], " "))
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("size %q: unknown unit %q (want B, K, KB, KiB, M, MB, MiB, G, GB or GiB)", s, t[i:])
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return n * mult, nil
}

// FormatSize writes a size the way ParseSize reads it, with the largest unit
// that divides it: 10485760 is "10MB".
func FormatSize(n int64) string {
	switch {
	case n != 0 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GB"
	case n != 0 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MB"
	case n != 0 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KB"
	}
	return strconv.FormatInt(n, 10) + "B"
}

// errUnknownSignal is wrapped by ParseSignal's errors.
var errUnknownSignal = errors.New("unknown signal")

// ParseSignal parses a signal name, with or without the SIG prefix, in any
// case: "SIGTERM", "TERM" and "sigterm" are all SIGTERM. Numbers are not
// accepted: they differ between platforms.
func ParseSignal(name string) (syscall.Signal, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if n == "" {
		return 0, fmt.Errorf("empty signal name: %w", errUnknownSignal)
	}
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	sig := unix.SignalNum(n)
	if sig == 0 {
		return 0, fmt.Errorf("%q: %w", name, errUnknownSignal)
	}
	return sig, nil
}

// canonicalSignal returns the canonical name of a signal name: "SIGTERM"
// for "term".
func canonicalSignal(name string) (string, error) {
	sig, err := ParseSignal(name)
	if err != nil {
		return "", err
	}
	return unix.SignalName(sig), nil
}
