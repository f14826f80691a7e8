package ctl

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap/zapcore"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/api/v3/version"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func (a *app) endpointCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "endpoint <subcommand>",
		Short:   "Health and status of endpoints; see `endpoint --help`",
		Long:    "Commands about the endpoints given with --endpoints (or, with --cluster, of every member).",
		GroupID: groupCluster,
	}
	cmd.PersistentFlags().Bool("cluster", false, "use the client URLs of every member instead of --endpoints")
	health := &cobra.Command{
		Use:   "health",
		Short: "Checks that each endpoint answers a linearizable read and has no alarm",
	}
	health.Run = a.run(a.endpointHealth)
	status := &cobra.Command{
		Use:   "status",
		Short: "Prints the status of each endpoint",
		Long: `Prints the status of each endpoint. The simple format writes one
comma-separated line per endpoint, with the same columns as the table format.`,
	}
	status.Run = a.run(a.endpointStatus)
	var hashRev int64
	hashkv := &cobra.Command{
		Use:   "hashkv",
		Short: "Prints the hash of the key-value history of each endpoint",
	}
	hashkv.PersistentFlags().Int64Var(&hashRev, "rev", 0, "hash the history up to this revision (0: the latest)")
	hashkv.Run = a.run(func(cmd *cobra.Command, _ []string) error { return a.endpointHashKV(cmd, hashRev) })
	cmd.AddCommand(hashkv, health, status)
	return cmd
}

// targetEndpoints returns --endpoints, or with --cluster the client URLs of
// all members as listed by the cluster. Call it after clientConfig: --cluster
// may come from ETCDCTL_CLUSTER.
func (a *app) targetEndpoints(cmd *cobra.Command) ([]string, error) {
	if cluster, _ := cmd.Flags().GetBool("cluster"); !cluster {
		eps, err := cmd.Flags().GetStringSlice("endpoints")
		if err != nil {
			return nil, exitWith(exitErr, err)
		}
		return eps, nil
	}
	sec, err := secureConfig(cmd)
	if err != nil {
		return nil, err
	}
	auth, err := a.authConfig(cmd)
	if err != nil {
		return nil, err
	}
	eps, err := a.endpoints(cmd)
	if err != nil {
		return nil, exitWith(exitErr, err)
	}
	flags := cmd.Flags()
	spec := &clientv3.ConfigSpec{Endpoints: eps, Secure: sec, Auth: auth}
	spec.DialTimeout, _ = flags.GetDuration("dial-timeout")
	spec.KeepAliveTime, _ = flags.GetDuration("keepalive-time")
	spec.KeepAliveTimeout, _ = flags.GetDuration("keepalive-timeout")
	cfg, err := clientv3.NewClientConfig(spec, a.newLogger(zapcore.InfoLevel))
	if err != nil {
		return nil, exitWith(exitErr, err)
	}
	cfg.Logger = a.newLogger(clientv3.ClientLogLevel()).Named("etcd-client")
	cli, err := clientv3.New(*cfg)
	if err != nil {
		return nil, exitWith(exitErr, err)
	}
	defer cli.Close()
	ctx, cancel := commandContext(cmd)
	defer cancel()
	members, err := cli.MemberList(ctx)
	if err != nil {
		return nil, exitWith(exitErr, fmt.Errorf("failed to fetch endpoints from etcd cluster member list: %w", err))
	}
	var urls []string
	for _, m := range members.Members {
		urls = append(urls, m.ClientURLs...)
	}
	return urls, nil
}

// targetConfig resolves the global flags, then the endpoints the command
// addresses (see targetEndpoints).
func (a *app) targetConfig(cmd *cobra.Command) (*clientv3.ConfigSpec, []string, error) {
	spec, err := a.clientConfig(cmd)
	if err != nil {
		return nil, nil, err
	}
	eps, err := a.targetEndpoints(cmd)
	if err != nil {
		return nil, nil, err
	}
	return spec, eps, nil
}

// eachEndpoint calls f for every endpoint the command addresses, one after
// the other, with a client connected to that endpoint alone and a context
// bounded by --command-timeout. f reports its own outcome; eachEndpoint
// fails only when the flags are wrong or a client cannot be made.
func (a *app) eachEndpoint(cmd *cobra.Command, f func(ctx context.Context, cli *clientv3.Client, ep string)) error {
	spec, eps, err := a.targetConfig(cmd)
	if err != nil {
		return err
	}
	for _, ep := range eps {
		spec.Endpoints = []string{ep}
		cli, err := a.newClient(spec, "etcd-client")
		if err != nil {
			return err
		}
		ctx, cancel := commandContext(cmd)
		f(ctx, cli, ep)
		cancel()
		cli.Close()
	}
	return nil
}

func (a *app) endpointHealth(cmd *cobra.Command, _ []string) error {
	spec, eps, err := a.targetConfig(cmd)
	if err != nil {
		return err
	}
	lg := a.newLogger(zapcore.InfoLevel)
	var cfgs []*clientv3.Config
	for _, ep := range eps {
		one := spec.Clone()
		one.Endpoints = []string{ep}
		cfg, err := clientv3.NewClientConfig(one, lg)
		if err != nil {
			return exitWith(exitBadArgs, err)
		}
		cfgs = append(cfgs, cfg)
	}

	results := make(chan epHealth, len(cfgs))
	var wg sync.WaitGroup
	for _, cfg := range cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- a.probe(cmd, cfg)
		}()
	}
	wg.Wait()
	close(results)

	var list []epHealth
	unhealthy := false
	for h := range results {
		list = append(list, h)
		unhealthy = unhealthy || h.Error != ""
	}
	if err := a.display.EndpointHealth(list); err != nil {
		return err
	}
	if unhealthy {
		return exitf(exitErr, "unhealthy cluster")
	}
	return nil
}

// probe checks one endpoint: a read of any key must succeed (a permission
// error also proves the request went through consensus), and no alarm may
// be raised.
func (a *app) probe(cmd *cobra.Command, cfg *clientv3.Config) epHealth {
	ep := cfg.Endpoints[0]
	cfg.Logger = a.newLogger(zapcore.InfoLevel).Named("client")
	cli, err := clientv3.New(*cfg)
	if err != nil {
		return epHealth{Ep: ep, Error: err.Error()}
	}
	defer cli.Close()
	start := time.Now()
	ctx, cancel := commandContext(cmd)
	defer cancel()
	_, err = cli.Get(ctx, "health")
	h := epHealth{Ep: ep, Took: time.Since(start).String()}
	if err == nil || errors.Is(err, rpctypes.ErrPermissionDenied) {
		h.Health = true
	} else {
		h.Error = err.Error()
		return h
	}
	alarms, err := cli.AlarmList(ctx)
	switch {
	case err != nil:
		h.Health = false
		h.Error = "Unable to fetch the alarm list"
	case len(alarms.Alarms) > 0:
		h.Health = false
		h.Error = "Active Alarm(s): "
		for _, al := range alarms.Alarms {
			switch al.Alarm {
			case pb.AlarmType_NOSPACE:
				h.Error += "NOSPACE "
			case pb.AlarmType_CORRUPT:
				h.Error += "CORRUPT "
			default:
				h.Error += "UNKNOWN "
			}
		}
	}
	return h
}

func (a *app) endpointStatus(cmd *cobra.Command, _ []string) error {
	var list []epStatus
	failed := false
	err := a.eachEndpoint(cmd, func(ctx context.Context, cli *clientv3.Client, ep string) {
		resp, err := cli.Status(ctx, ep)
		if err != nil {
			failed = true
			fmt.Fprintf(a.stderr, "Failed to get the status of endpoint %s (%v)\n", ep, err)
			return
		}
		list = append(list, epStatus{Ep: ep, Resp: resp})
	})
	if err != nil {
		return err
	}
	if err := a.display.EndpointStatus(list); err != nil {
		return err
	}
	if failed {
		return &exitError{code: exitErr}
	}
	return nil
}

func (a *app) endpointHashKV(cmd *cobra.Command, rev int64) error {
	var list []epHashKV
	var last error
	err := a.eachEndpoint(cmd, func(ctx context.Context, cli *clientv3.Client, ep string) {
		resp, err := cli.HashKV(ctx, ep, rev)
		if err != nil {
			last = err
			fmt.Fprintf(a.stderr, "Failed to get the hash of endpoint %s (%v)\n", ep, err)
			return
		}
		list = append(list, epHashKV{Ep: ep, Resp: resp})
	})
	if err != nil {
		return err
	}
	if err := a.display.EndpointHashKV(list); err != nil {
		return err
	}
	if last != nil {
		return exitWith(exitErr, last)
	}
	return nil
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Prints the etcdctl version this CLI is compatible with",
		GroupID: groupUtility,
		Run: func(*cobra.Command, []string) {
			fmt.Fprintln(a.stdout, "etcdctl version:", version.Version)
			fmt.Fprintln(a.stdout, "API version:", version.APIVersion)
		},
	}
}
