package ctl

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	clientv3 "go.etcd.io/etcd/client/v3"
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
	failed := false
	err := a.eachEndpoint(cmd, func(ctx context.Context, cli *clientv3.Client, ep string) {
		start := time.Now()
		_, err := cli.Defragment(ctx, ep)
		took := time.Since(start)
		if err != nil {
			failed = true
			fmt.Fprintf(a.stderr, "Failed to defragment etcd member[%s]. took %s. (%v)\n", ep, took, err)
			return
		}
		fmt.Fprintf(a.stdout, "Finished defragmenting etcd member[%s]. took %s\n", ep, took)
	})
	if err != nil {
		return err
	}
	if failed {
		return &exitError{code: exitErr}
	}
	return nil
}
