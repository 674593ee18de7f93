package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/app"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/config"
)

func newCheck(stdio IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check [flags]",
		Short: "Validate the configuration and the mapping file, then exit",
		Long: `Load the configuration (flags, environment, --config.file) and compile the
mapping file exactly as serve would, report every problem, and exit: 0 when
both are valid, 1 otherwise. Nothing is started.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cmd.Flags())
			if err != nil {
				return err
			}
			m, err := app.LoadMapping(cfg.Mapping.File)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdio.Stdout, "configuration OK; mapping %s OK; alerts go to %d Alertmanager URL(s)", m.Name(), len(cfg.Alertmanager.URLs))
			if n := cfg.Source.NATS; n.Enabled() {
				fmt.Fprintf(stdio.Stdout, "; events also from JetStream stream %s (consumer %s, %d NATS URL(s))", n.Stream, n.Consumer, len(n.URLs))
			}
			fmt.Fprintln(stdio.Stdout)
			return nil
		},
	}
	config.RegisterFlags(cmd.Flags())
	cmd.Flags().SortFlags = false
	return cmd
}
