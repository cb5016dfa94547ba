package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ancm-dev/ancm/config"
)

func runValidate(cmd *cobra.Command, path string) error {
	if err := requireConfig(path); err != nil {
		return err
	}
	f, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(cmd.ErrOrStderr(), err)
		return failure{exitError}
	}
	for _, w := range config.Warnings(f) {
		fmt.Fprintln(cmd.ErrOrStderr(), w)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d apps)\n", path, len(f.Apps))
	return nil
}
