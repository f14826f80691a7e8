package ctl

import (
	"strconv"

	"github.com/spf13/cobra"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Only the leader accepts MoveLeader, so move-leader asks each endpoint in
// turn for its status and sends the request to the first that says it
// leads. As in etcdctl, one command timeout covers every status request and
// the move itself, and the first endpoint that fails to answer ends the
// command: endpoints after it are not tried.

func (a *app) moveLeaderCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "move-leader <transferee-member-id>",
		Short:   "Transfers the leadership to another member",
		Long:    "Transfers the leadership to another member. One of --endpoints must be the current leader.",
		GroupID: groupCluster,
	}
	cmd.Run = a.run(a.moveLeader)
	return cmd
}

func (a *app) moveLeader(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return exitf(exitBadArgs, "move-leader command needs 1 argument")
	}
	target, err := strconv.ParseUint(args[0], 16, 64)
	if err != nil {
		return exitWith(exitBadArgs, err)
	}
	spec, err := a.clientConfig(cmd)
	if err != nil {
		return err
	}
	// The endpoints as the client holds them, which is what etcdctl
	// names in its "no leader" error.
	cli, err := a.newClient(spec, "etcd-client")
	if err != nil {
		return err
	}
	eps := cli.Endpoints()
	cli.Close()

	ctx, cancel := commandContext(cmd)
	defer cancel()
	var leader *clientv3.Client
	var leaderID uint64
	for _, ep := range eps {
		spec.Endpoints = []string{ep}
		c, err := a.newClient(spec, "etcd-client")
		if err != nil {
			return err
		}
		st, err := c.Status(ctx, ep)
		if err != nil {
			c.Close()
			return exitWith(exitErr, err)
		}
		if st.Header.GetMemberId() == st.Leader {
			leader, leaderID = c, st.Leader
			break
		}
		c.Close()
	}
	if leader == nil {
		return exitf(exitBadArgs, "no leader endpoint given at %v", eps)
	}
	defer leader.Close()
	resp, err := leader.MoveLeader(ctx, target)
	if err != nil {
		return exitWith(exitErr, err)
	}
	return a.display.MoveLeader(leaderID, target, resp)
}
