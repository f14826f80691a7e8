package ctl

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The lease commands follow etcdctl's order of checks exactly, because it
// decides which error a bad command line reports:
//
//   - grant, revoke and keep-alive check their arguments before the client
//     configuration, so "revoke zz -w yaml" complains about the ID;
//   - timetolive builds the client before it parses the ID, so
//     "timetolive zz -w yaml" complains about the format.
//
// grant and revoke are bounded by --command-timeout; timetolive, list and
// keep-alive are not (etcdctl gives them no deadline), they only end early
// when the invocation is stopped.

func (a *app) leaseCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "lease <subcommand>",
		Short:   "Grants, inspects, renews and revokes leases; see `lease --help`",
		Long:    "Commands about leases: a key put with --lease <ID> is deleted when its lease expires or is revoked.",
		GroupID: groupKV,
	}
	cmd.AddCommand(
		a.leaseGrantCommand(),
		a.leaseRevokeCommand(),
		a.leaseTimeToLiveCommand(),
		a.leaseListCommand(),
		a.leaseKeepAliveCommand(),
	)
	return cmd
}

// leaseID parses a lease ID argument, hexadecimal as etcdctl prints it.
func leaseID(arg string) (clientv3.LeaseID, error) {
	id, err := strconv.ParseInt(arg, 16, 64)
	if err != nil {
		return 0, exitf(exitBadArgs, "bad lease ID arg (%w), expecting ID in Hex", err)
	}
	return clientv3.LeaseID(id), nil
}

func (a *app) leaseGrantCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "grant <ttl>",
		Short: "Creates a lease of <ttl> seconds",
		Long: `Creates a lease of <ttl> seconds and prints its ID. The server may raise a
short TTL to its minimum; it refuses one above 9000000000 seconds.`,
	}
	cmd.Run = a.run(func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return exitf(exitBadArgs, "lease grant command needs TTL argument")
		}
		ttl, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil {
			return exitf(exitBadArgs, "bad TTL (%w)", err)
		}
		return a.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
			resp, err := cli.Grant(ctx, ttl)
			if err != nil {
				return exitf(exitErr, "failed to grant lease (%w)", err)
			}
			return a.display.Grant(resp)
		})
	})
	return cmd
}

func (a *app) leaseRevokeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "revoke <leaseID>",
		Short: "Revokes a lease, deleting the keys attached to it",
	}
	cmd.Run = a.run(func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return exitf(exitBadArgs, "lease revoke command needs 1 argument")
		}
		id, err := leaseID(args[0])
		if err != nil {
			return err
		}
		return a.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
			resp, err := cli.Revoke(ctx, id)
			if err != nil {
				return exitf(exitErr, "failed to revoke lease (%w)", err)
			}
			return a.display.Revoke(id, resp)
		})
	})
	return cmd
}

func (a *app) leaseTimeToLiveCommand() *cobra.Command {
	var keys bool
	cmd := &cobra.Command{
		Use:   "timetolive <leaseID> [options]",
		Short: "Prints the granted and remaining TTL of a lease",
		Long: `Prints the granted and remaining TTL of a lease, in seconds, and with --keys
the keys attached to it. An unknown or expired lease is reported as expired,
not as an error.`,
	}
	cmd.Flags().BoolVar(&keys, "keys", false, "also print the keys attached to the lease")
	cmd.Run = a.run(func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return exitf(exitBadArgs, "lease timetolive command needs lease ID as argument")
		}
		cli, err := a.client(cmd)
		if err != nil {
			return err
		}
		defer cli.Close()
		id, err := leaseID(args[0])
		if err != nil {
			return err
		}
		var opts []clientv3.LeaseOption
		if keys {
			opts = append(opts, clientv3.WithAttachedKeys())
		}
		resp, err := cli.TimeToLive(a.ctx, id, opts...)
		if err != nil {
			return a.stoppedOr(exitWith(exitBadConn, err))
		}
		return a.display.TimeToLive(resp, keys)
	})
	return cmd
}

func (a *app) leaseListCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Lists the IDs of all live leases",
	}
	cmd.Run = a.run(func(cmd *cobra.Command, _ []string) error {
		cli, err := a.client(cmd)
		if err != nil {
			return err
		}
		defer cli.Close()
		resp, err := cli.Leases(a.ctx)
		if err != nil {
			return a.stoppedOr(exitWith(exitBadConn, err))
		}
		return a.display.Leases(resp)
	})
	return cmd
}

func (a *app) leaseKeepAliveCommand() *cobra.Command {
	var once bool
	cmd := &cobra.Command{
		Use:   "keep-alive [options] <leaseID>",
		Short: "Renews a lease until it expires or is revoked",
		Long: `Renews a lease whenever a third of its TTL has passed and prints every renewal,
until the lease expires or is revoked (then exits with status 0) or the
process is stopped. With --once, renews it a single time and exits.`,
	}
	cmd.Flags().BoolVar(&once, "once", false, "renew the lease once and exit")
	cmd.Run = a.run(func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return exitf(exitBadArgs, "lease keep-alive command needs lease ID as argument")
		}
		id, err := leaseID(args[0])
		if err != nil {
			return err
		}
		cli, err := a.client(cmd)
		if err != nil {
			return err
		}
		defer cli.Close()
		if once {
			resp, err := cli.KeepAliveOnce(a.ctx, id)
			if err != nil {
				return a.stoppedOr(exitWith(exitBadConn, err))
			}
			return a.display.KeepAlive(resp)
		}
		// The client renews in the background and closes ch when the
		// server reports the lease gone (TTL 0), when no renewal came
		// back within the TTL, or when a.ctx is done.
		ch, err := cli.KeepAlive(a.ctx, id)
		if err != nil {
			return a.stoppedOr(exitWith(exitBadConn, err))
		}
		for resp := range ch {
			if err := a.display.KeepAlive(resp); err != nil {
				return err
			}
		}
		if a.ctx.Err() != nil {
			return errSignaled
		}
		// Only the simple format announces the end; every format exits 0.
		if _, ok := a.display.(*simplePrinter); ok {
			fmt.Fprintf(a.stdout, "lease %016x expired or revoked.\n", id)
		}
		return nil
	})
	return cmd
}

// stoppedOr returns err, unless the invocation was stopped, which explains
// any failure of a request made with a.ctx and prints nothing.
func (a *app) stoppedOr(err error) error {
	if a.ctx.Err() != nil {
		return errSignaled
	}
	return err
}
