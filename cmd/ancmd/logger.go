package main

import (
	"os"

	"github.com/hashicorp/go-hclog"
)

// newLogger builds the root logger; every package derives its own from it.
// The loggers derived with Named and With share its level, so SetLevel on
// the root changes them all (a reload's new log_level).
func newLogger(level, format string) (hclog.Logger, func(string)) {
	log := hclog.New(&hclog.LoggerOptions{
		Name:       "ancmd",
		Level:      hclog.LevelFromString(level),
		JSONFormat: format == "json",
		Output:     os.Stderr,
		TimeFormat: "2006-01-02T15:04:05.000Z07:00",
	})
	return log, func(l string) { log.SetLevel(hclog.LevelFromString(l)) }
}
