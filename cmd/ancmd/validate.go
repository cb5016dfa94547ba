package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/ancm-dev/ancm/config"
)

func runValidate(args []string) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	path := fs.String("c", "", "config file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" {
		fmt.Fprintln(os.Stderr, "ancmd validate: -c FILE is required")
		return 2
	}
	f, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, w := range config.Warnings(f) {
		fmt.Fprintln(os.Stderr, w)
	}
	fmt.Printf("%s: ok (%d apps)\n", *path, len(f.Apps))
	return 0
}
