package main

import (
	"os"

	"github.com/hashicorp/go-hclog"
)

// newLogger builds the root logger; every package derives its own from it.
func newLogger(level, format string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "ancmd",
		Level:      hclog.LevelFromString(level),
		JSONFormat: format == "json",
		Output:     os.Stderr,
		TimeFormat: "2006-01-02T15:04:05.000Z07:00",
	})
}
