package ctl

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The member commands check their arguments before anything else, then
// resolve the global flags (so a bad --write-out is reported only for a
// well-formed command line), dial, make one request and print its response.
// A format that cannot show the response fails after the request: the
// change is made all the same, as with etcdctl.

func (a *app) memberCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "member <subcommand>",
		Short:   "Cluster membership; see `member --help`",
		Long:    "Commands about the members of the cluster.",
		GroupID: groupCluster,
	}
	cmd.AddCommand(
		a.memberAddCommand(),
		a.memberRemoveCommand(),
		a.memberUpdateCommand(),
		a.memberListCommand(),
		a.memberPromoteCommand(),
	)
	return cmd
}

// memberID parses a member ID argument, hexadecimal as the member commands
// print it.
func memberID(arg string) (uint64, error) {
	id, err := strconv.ParseUint(arg, 16, 64)
	if err != nil {
		return 0, exitf(exitBadArgs, "bad member ID arg (%w), expecting ID in Hex", err)
	}
	return id, nil
}

// oneMemberID is the argument check of remove, update and promote.
func oneMemberID(args []string) (uint64, error) {
	if len(args) != 1 {
		return 0, exitf(exitBadArgs, "member ID is not provided")
	}
	return memberID(args[0])
}

func (a *app) memberAddCommand() *cobra.Command {
	var peerURLs string
	var learner bool
	cmd := &cobra.Command{
		Use:   "add <memberName> [options]",
		Short: "Adds a member to the cluster",
		Long: `Adds a member to the cluster. The simple format then prints the
ETCD_* settings the new member must start with.`,
	}
	cmd.Flags().StringVar(&peerURLs, "peer-urls", "", "comma separated peer URLs of the new member")
	cmd.Flags().BoolVar(&learner, "learner", false, "add the member as a non-voting learner")
	cmd.Run = a.run(func(cmd *cobra.Command, args []string) error {
		if len(args) < 1 {
			return exitf(exitBadArgs, "member name not provided")
		}
		if len(args) > 1 {
			msg := "too many arguments"
			for _, arg := range args {
				// A URL given as an argument was most likely meant
				// for --peer-urls.
				if strings.HasPrefix(strings.ToLower(arg), "http") {
					msg += ", did you mean --peer-urls=" + arg
				}
			}
			return exitf(exitBadArgs, "%s", msg)
		}
		if peerURLs == "" {
			return exitf(exitBadArgs, "member peer urls not provided")
		}
		// Split as given: no trimming, empty items are the server's to
		// refuse.
		urls := strings.Split(peerURLs, ",")
		return a.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
			var resp *clientv3.MemberAddResponse
			var err error
			if learner {
				resp, err = cli.MemberAddAsLearner(ctx, urls)
			} else {
				resp, err = cli.MemberAdd(ctx, urls)
			}
			if err != nil {
				return exitWith(exitErr, err)
			}
			return a.display.MemberAdd(resp, args[0], peerURLs)
		})
	})
	return cmd
}

func (a *app) memberRemoveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remove <memberID>",
		Short: "Removes a member from the cluster",
	}
	cmd.Run = a.run(func(cmd *cobra.Command, args []string) error {
		id, err := oneMemberID(args)
		if err != nil {
			return err
		}
		return a.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
			resp, err := cli.MemberRemove(ctx, id)
			if err != nil {
				return exitWith(exitErr, err)
			}
			return a.display.MemberRemove(id, resp)
		})
	})
	return cmd
}

func (a *app) memberUpdateCommand() *cobra.Command {
	var peerURLs string
	cmd := &cobra.Command{
		Use:   "update <memberID> [options]",
		Short: "Replaces the peer URLs of a member",
	}
	cmd.Flags().StringVar(&peerURLs, "peer-urls", "", "comma separated peer URLs of the member")
	cmd.Run = a.run(func(cmd *cobra.Command, args []string) error {
		id, err := oneMemberID(args)
		if err != nil {
			return err
		}
		if peerURLs == "" {
			return exitf(exitBadArgs, "member peer urls not provided")
		}
		urls := strings.Split(peerURLs, ",")
		return a.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
			resp, err := cli.MemberUpdate(ctx, id, urls)
			if err != nil {
				return exitWith(exitErr, err)
			}
			return a.display.MemberUpdate(id, resp)
		})
	})
	return cmd
}

func (a *app) memberPromoteCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "promote <memberID>",
		Short: "Promotes a learner to a voting member",
		Long: `Promotes a learner to a voting member. The leader refuses while the
learner's log is not close enough to its own.`,
	}
	cmd.Run = a.run(func(cmd *cobra.Command, args []string) error {
		id, err := oneMemberID(args)
		if err != nil {
			return err
		}
		return a.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
			resp, err := cli.MemberPromote(ctx, id)
			if err != nil {
				return exitWith(exitErr, err)
			}
			return a.display.MemberPromote(id, resp)
		})
	})
	return cmd
}

func (a *app) memberListCommand() *cobra.Command {
	var consistency string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Lists the members of the cluster",
		Long: `Lists the members of the cluster. The simple format writes one
comma-separated line per member: ID, status, name, peer URLs, client URLs,
learner.`,
	}
	cmd.Flags().StringVar(&consistency, "consistency", "l", "l for a linearizable list, s for a serializable one")
	cmd.Run = a.run(func(cmd *cobra.Command, _ []string) error {
		// etcdctl names get's --consistency (always "l" here) in this
		// error, not the value given; scripts see exactly that.
		s, err := serializable(consistency, "l")
		if err != nil {
			return err
		}
		var opts []clientv3.OpOption
		if s {
			opts = append(opts, clientv3.WithSerializable())
		}
		return a.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
			resp, err := cli.MemberList(ctx, opts...)
			if err != nil {
				return exitWith(exitErr, err)
			}
			return a.display.MemberList(resp)
		})
	})
	return cmd
}

// memberEnv is what the simple format of member add prints after its
// summary: the settings that start the new member, its name and peer URLs
// as given, and every member's peer URLs named by its name (empty for a
// member that never started).
func memberEnv(r *clientv3.MemberAddResponse, name, peerURLs string) string {
	var cluster []string
	for _, m := range r.Members {
		n := m.Name
		if m.ID == r.Member.GetID() {
			n = name
		}
		for _, u := range m.PeerURLs {
			cluster = append(cluster, n+"="+u)
		}
	}
	var b strings.Builder
	b.WriteString("\n")
	fmt.Fprintf(&b, "ETCD_NAME=%q\n", name)
	fmt.Fprintf(&b, "ETCD_INITIAL_CLUSTER=%q\n", strings.Join(cluster, ","))
	fmt.Fprintf(&b, "ETCD_INITIAL_ADVERTISE_PEER_URLS=%q\n", peerURLs)
	b.WriteString("ETCD_INITIAL_CLUSTER_STATE=\"existing\"\n")
	return b.String()
}
