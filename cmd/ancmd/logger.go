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

// newAccessLogger builds the access log's logger, in format (text|json;
// "" takes logFormat), at info whatever the root logger's level: an
// operator who turns the access log on wants its lines.
func newAccessLogger(format, logFormat string) hclog.Logger {
	if format == "" {
		format = logFormat
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       "ancmd.dataplane.access",
		Level:      hclog.Info,
		JSONFormat: format == "json",
		Output:     os.Stderr,
		TimeFormat: "2006-01-02T15:04:05.000Z07:00",
	})
}
