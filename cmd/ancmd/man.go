package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/ancm-dev/ancm/internal/buildinfo"
)

// manCommand writes ancmd's man pages: `make man` runs it. Hidden: it is
// for building the package, not for operators.
func manCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write the man pages of ancmd to DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			root.DisableAutoGenTag = true
			hdr := &doc.GenManHeader{Title: "ANCMD", Section: "8", Source: "ancm " + buildinfo.Read().Version, Manual: "ancm manual"}
			err := os.MkdirAll(args[0], 0o755)
			if err == nil {
				err = doc.GenManTree(root, hdr, args[0])
			}
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "ancmd man:", err)
				return failure{exitError}
			}
			return nil
		},
	}
}
