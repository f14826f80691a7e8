package ctl

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

// defrag asks each endpoint (with --cluster, each member's client URLs)
// in turn to defragment its storage, one connection per endpoint, each
// request bounded by --command-timeout. It prints one line per endpoint,
// on stdout for a success and on stderr for a failure, with the time the
// request took, and exits 1 if any failed. Arguments are ignored and
// --write-out is only validated, as etcdctl does. On Cairn a
// defragmentation is a compaction of the whole storage engine that
// blocks neither reads nor writes.

func (a *app) defragCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "defrag",
		Short:   "Defragments the storage of the members at the given endpoints",
		GroupID: groupCluster,
	}
	// Declared here, not inherited: ETCDCTL_CLUSTER does not set it (the
	// environment only sets global flags).
	cmd.PersistentFlags().Bool("cluster", false, "use the client URLs of every member instead of --endpoints")
	cmd.Run = a.run(a.defrag)
	return cmd
}

func (a *app) defrag(cmd *cobra.Command, _ []string) error {
	spec, err := a.clientConfig(cmd)
	if err != nil {
		return err
	}
	eps, err := a.targetEndpoints(cmd)
	if err != nil {
		return err
	}
	failed := false
	for _, ep := range eps {
		spec.Endpoints = []string{ep}
		cli, err := a.newClient(spec, "etcd-client")
		if err != nil {
			return err
		}
		ctx, cancel := commandContext(cmd)
		start := time.Now()
		_, err = cli.Defragment(ctx, ep)
		took := time.Since(start)
		cancel()
		if err != nil {
			failed = true
			fmt.Fprintf(a.stderr, "Failed to defragment etcd member[%s]. took %s. (%v)\n", ep, took, err)
		} else {
			fmt.Fprintf(a.stdout, "Finished defragmenting etcd member[%s]. took %s\n", ep, took)
		}
		cli.Close()
	}
	if failed {
		return &exitError{code: exitErr}
	}
	return nil
}
