package ctl

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// alarm list asks for every active alarm; alarm disarm deactivates each of
// them (the client lists them, then sends one request per alarm) and
// prints those it cleared. Both refuse arguments before anything else, and
// a format that cannot show the answer (table) fails after the request,
// so disarm -w table still disarms, as with etcdctl.

func (a *app) alarmCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "alarm <subcommand>",
		Short:   "Alarms of the cluster; see `alarm --help`",
		Long:    "Commands about the alarms (NOSPACE, CORRUPT) raised in the cluster.",
		GroupID: groupCluster,
	}
	cmd.AddCommand(a.alarmDisarmCommand(), a.alarmListCommand())
	return cmd
}

func (a *app) alarmDisarmCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "disarm",
		Short: "Deactivates every alarm",
	}
	cmd.Run = a.run(func(cmd *cobra.Command, args []string) error {
		if len(args) != 0 {
			return exitf(exitBadArgs, "alarm disarm command accepts no arguments")
		}
		return a.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
			resp, err := cli.AlarmDisarm(ctx, &clientv3.AlarmMember{})
			if err != nil {
				return exitWith(exitErr, err)
			}
			return a.display.Alarm(resp)
		})
	})
	return cmd
}

func (a *app) alarmListCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Lists the active alarms",
	}
	cmd.Run = a.run(func(cmd *cobra.Command, args []string) error {
		if len(args) != 0 {
			return exitf(exitBadArgs, "alarm list command accepts no arguments")
		}
		return a.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
			resp, err := cli.AlarmList(ctx)
			if err != nil {
				return exitWith(exitErr, err)
			}
			return a.display.Alarm(resp)
		})
	})
	return cmd
}

// alarmText is an alarm as etcdctl's simple format prints it: protobuf's
// text format, fields at their zero value left out, an unknown type as its
// number. Protobuf separates the fields with one space in some builds and
// two in others, on purpose, so etcdctl's line varies from one binary to
// another; cairnctl always writes one.
func alarmText(a *pb.AlarmMember) string {
	var fields []string
	if a.GetMemberID() != 0 {
		fields = append(fields, fmt.Sprintf("memberID:%d", a.GetMemberID()))
	}
	if a.GetAlarm() != pb.AlarmType_NONE {
		fields = append(fields, "alarm:"+a.GetAlarm().String())
	}
	return strings.Join(fields, " ")
}
