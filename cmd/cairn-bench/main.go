package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// options are the flags shared by every workload.
type options struct {
	endpoints      []string
	clients        int
	conns          int
	total          uint64
	rate           float64       // requests per second; 0 = unlimited
	requestTimeout time.Duration // per request; 0 = none
	dialTimeout    time.Duration
	maxErrors      uint64 // failures that abort the run; 0 = never abort
	json           bool
	seed           uint64 // 0 = from the clock
	// cacert, cert and key are etcdctl's TLS flags (https endpoints).
	cacert, cert, key string
	insecureSkipTLS   bool
}

// keyOptions are the flags of the writing workloads.
type keyOptions struct {
	keySize        int
	valSize        int
	keySpaceSize   uint64
	sequentialKeys bool
	distinctValues bool // values.go
}

func (o *options) validate() error {
	switch {
	case len(o.endpoints) == 0:
		return errors.New("--endpoints: at least one endpoint is required")
	case o.clients < 1:
		return fmt.Errorf("--clients %d: must be at least 1", o.clients)
	case o.conns < 1:
		return fmt.Errorf("--conns %d: must be at least 1", o.conns)
	case o.conns > o.clients:
		return fmt.Errorf("--conns %d: more connections than --clients %d would leave some unused", o.conns, o.clients)
	case o.total < 1:
		return fmt.Errorf("--total %d: must be at least 1", o.total)
	case o.rate < 0:
		return fmt.Errorf("--rate %v: must not be negative", o.rate)
	case o.requestTimeout < 0:
		return fmt.Errorf("--request-timeout %v: must not be negative", o.requestTimeout)
	}
	return nil
}

// maxKeys returns how many distinct keys fit in size decimal digits.
func maxKeys(size int) uint64 {
	n := uint64(1)
	for range size {
		if n > (1<<64-1)/10 {
			return 1<<64 - 1
		}
		n *= 10
	}
	return n
}

func (k *keyOptions) validate(keysPerRequest int) error {
	switch {
	case k.keySize < 1:
		return fmt.Errorf("--key-size %d: must be at least 1", k.keySize)
	case k.valSize < 0:
		return fmt.Errorf("--val-size %d: must not be negative", k.valSize)
	case k.keySpaceSize < 1:
		return fmt.Errorf("--key-space-size %d: must be at least 1", k.keySpaceSize)
	case k.keySpaceSize > maxKeys(k.keySize):
		return fmt.Errorf("--key-space-size %d: --key-size %d holds only %d distinct keys", k.keySpaceSize, k.keySize, maxKeys(k.keySize))
	case uint64(keysPerRequest) > k.keySpaceSize:
		return fmt.Errorf("--txn-ops %d: needs at least as many keys, but --key-space-size is %d", keysPerRequest, k.keySpaceSize)
	}
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		if !errors.Is(err, errFailedRequests) {
			fmt.Fprintln(os.Stderr, "cairn-bench:", err)
		}
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	o := &options{}
	root := &cobra.Command{
		Use:           "cairn-bench",
		Short:         "Load generator for servers speaking etcd's v3 API",
		Long:          "cairn-bench sends put, range, txn-put, watch, lease keep-alive or defrag load through the etcd v3 Go client and reports throughput and latency.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(*cobra.Command, []string) {
			if o.seed == 0 {
				o.seed = uint64(time.Now().UnixNano())
			}
		},
	}
	f := root.PersistentFlags()
	f.StringSliceVar(&o.endpoints, "endpoints", []string{"127.0.0.1:2379"}, "comma-separated gRPC endpoints")
	f.IntVar(&o.clients, "clients", 1, "concurrent clients (goroutines), each with one request in flight (lease-keepalive: one stream each)")
	f.IntVar(&o.conns, "conns", 1, "gRPC connections the clients share round-robin")
	f.Uint64Var(&o.total, "total", 10000, "number of requests to send")
	f.Float64Var(&o.rate, "rate", 0, "requests per second over all clients (0 = unlimited)")
	f.DurationVar(&o.requestTimeout, "request-timeout", 10*time.Second, "timeout of each request (0 = none)")
	f.DurationVar(&o.dialTimeout, "dial-timeout", 5*time.Second, "timeout to establish each connection")
	f.Uint64Var(&o.maxErrors, "max-errors", 100, "stop the run after this many failed requests (0 = never)")
	f.BoolVar(&o.json, "json", false, "print the report as one JSON object")
	f.Uint64Var(&o.seed, "seed", 0, "seed for random keys and values (0 = from the clock)")
	f.StringVar(&o.cacert, "cacert", "", "verify https endpoints with this CA bundle")
	f.StringVar(&o.cert, "cert", "", "client TLS certificate file")
	f.StringVar(&o.key, "key", "", "client TLS key file")
	f.BoolVar(&o.insecureSkipTLS, "insecure-skip-tls-verify", false, "do not verify https endpoints' certificates")

	root.AddCommand(newPutCommand(o), newRangeCommand(o), newRangeRandomCommand(o), newTxnPutCommand(o), newWatchCommand(o), newLeaseKeepAliveCommand(o), newDefragCommand(o))
	return root
}

func addKeyFlags(cmd *cobra.Command, k *keyOptions) {
	f := cmd.Flags()
	f.IntVar(&k.keySize, "key-size", 8, "key size in bytes")
	f.IntVar(&k.valSize, "val-size", 256, "value size in bytes")
	f.Uint64Var(&k.keySpaceSize, "key-space-size", 1, "number of distinct keys written")
	f.BoolVar(&k.sequentialKeys, "sequential-keys", false, "write keys in order (request n writes key n mod key-space-size) instead of at random")
	f.BoolVar(&k.distinctValues, "distinct-values", false, "give each put its own value (a random slice of a 1 MiB random pool) instead of one value for all, so the server cannot compress values against each other")
}

func newPutCommand(o *options) *cobra.Command {
	k := &keyOptions{}
	cmd := &cobra.Command{
		Use:   "put",
		Short: "Benchmark Put",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := k.validate(1); err != nil {
				return err
			}
			return execute(cmd.Context(), o, newPutWorkload(k, 1, false, o.seed))
		},
	}
	addKeyFlags(cmd, k)
	return cmd
}

func newTxnPutCommand(o *options) *cobra.Command {
	k := &keyOptions{}
	var ops int
	cmd := &cobra.Command{
		Use:   "txn-put",
		Short: "Benchmark Txn with puts in its Then branch",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ops < 1 {
				return fmt.Errorf("--txn-ops %d: must be at least 1", ops)
			}
			if err := k.validate(ops); err != nil {
				return err
			}
			return execute(cmd.Context(), o, newPutWorkload(k, ops, true, o.seed))
		},
	}
	addKeyFlags(cmd, k)
	cmd.Flags().IntVar(&ops, "txn-ops", 1, "puts per transaction, on distinct keys")
	return cmd
}

func newRangeCommand(o *options) *cobra.Command {
	var consistency string
	cmd := &cobra.Command{
		Use:   "range KEY [END]",
		Short: "Benchmark Range over KEY, or over [KEY, END)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			serializable, err := parseConsistency(consistency)
			if err != nil {
				return err
			}
			end := ""
			if len(args) == 2 {
				end = args[1]
			}
			return execute(cmd.Context(), o, newRangeWorkload(args[0], end, serializable))
		},
	}
	cmd.Flags().StringVar(&consistency, "consistency", "l", "l (linearizable) or s (serializable)")
	return cmd
}

// parseConsistency reads --consistency: l (linearizable) or s
// (serializable), in either case; it reports whether reads are
// serializable.
func parseConsistency(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "l":
		return false, nil
	case "s":
		return true, nil
	}
	return false, fmt.Errorf("--consistency %q: must be l (linearizable) or s (serializable)", s)
}

// errFailedRequests reports a completed run with failed requests; the report
// already says so, so main only sets the exit status.
var errFailedRequests = errors.New("some requests failed")

func execute(ctx context.Context, o *options, w workload) error {
	if err := o.validate(); err != nil {
		return err
	}
	res, err := run(ctx, o, w, os.Stderr)
	if err != nil {
		return err
	}
	return emit(o, res)
}

// report is what every workload's result can do.
type report interface {
	writeJSON(io.Writer) error
	writeText(io.Writer) error
	// failed reports requests that failed, or a run cut short.
	failed() bool
}

// emit prints rep in the chosen format and turns a failed run into
// errFailedRequests.
func emit(o *options, rep report) error {
	write := rep.writeText
	if o.json {
		write = rep.writeJSON
	}
	if err := write(os.Stdout); err != nil {
		return err
	}
	if rep.failed() {
		return errFailedRequests
	}
	return nil
}
