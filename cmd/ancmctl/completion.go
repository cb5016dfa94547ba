package main

import (
	"github.com/spf13/cobra"
)

func (c *cli) completionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh",
		Short: "Write a shell completion script",
		Long: `Write a completion script for bash or zsh to stdout. It completes commands,
flags and, by asking the daemon, app names.`,
		Example: `  source <(ancmctl completion bash)
  ancmctl completion bash > /etc/bash_completion.d/ancmctl
  ancmctl completion zsh > "${fpath[1]}/_ancmctl"`,
		ValidArgs: []cobra.Completion{"bash", "zsh"},
		Args: func(cmd *cobra.Command, args []string) error {
			if err := exactArgs("shell (bash or zsh)")(cmd, args); err != nil {
				return err
			}
			if args[0] != "bash" && args[0] != "zsh" {
				return usageErrorf("shell %q: want bash or zsh", args[0])
			}
			return nil
		},
		RunE: c.runE(func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			if args[0] == "zsh" {
				return root.GenZshCompletion(c.stdout)
			}
			return root.GenBashCompletionV2(c.stdout, true)
		}),
	}
}
