package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/ancm-dev/ancm/internal/buildinfo"
)

// manCommand writes the man pages, ancmctl(1) and one per verb: `make man`
// runs it. Hidden: it is for building the package, not for operators.
func (c *cli) manCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "man DIR",
		Short:   "Write the man pages of ancmctl to DIR",
		Example: `  ancmctl man man/ && man -l man/ancmctl.1`,
		Hidden:  true,
		Args:    exactArgs("DIR"),
		RunE: c.runE(func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			root.DisableAutoGenTag = true
			hdr := &doc.GenManHeader{Title: "ANCMCTL", Section: "1", Source: "ancm " + buildinfo.Read().Version, Manual: "ancm manual"}
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			if err := doc.GenManTree(root, hdr, args[0]); err != nil {
				return fmt.Errorf("man pages: %w", err)
			}
			return nil
		}),
	}
}
