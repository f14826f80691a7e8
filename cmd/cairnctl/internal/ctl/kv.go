package ctl

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// putOptions are the flags of put, shared with put lines inside txn.
type putOptions struct {
	lease       string
	prevKV      bool
	ignoreValue bool
	ignoreLease bool
}

func (o *putOptions) register(fs *pflag.FlagSet) {
	fs.StringVar(&o.lease, "lease", "0", "hexadecimal ID of the lease to attach")
	fs.BoolVar(&o.prevKV, "prev-kv", false, "also print the key-value pair being replaced")
	fs.BoolVar(&o.ignoreValue, "ignore-value", false, "keep the current value (only the lease changes)")
	fs.BoolVar(&o.ignoreLease, "ignore-lease", false, "keep the current lease (only the value changes)")
}

// op validates the arguments; the value comes from stdin when not given.
func (o *putOptions) op(args []string, stdin io.Reader) (string, string, []clientv3.OpOption, error) {
	const usage = "put command needs 1 argument and input from stdin or 2 arguments"
	if len(args) == 0 {
		return "", "", nil, exitf(exitBadArgs, usage)
	}
	key := args[0]
	if o.ignoreValue && len(args) > 1 {
		return "", "", nil, exitf(exitBadArgs, "put command needs only 1 argument when 'ignore-value' is set")
	}
	var value string
	if !o.ignoreValue {
		v, ok := argOrStdin(args, stdin, 1)
		if !ok {
			return "", "", nil, exitf(exitBadArgs, usage)
		}
		value = v
	}
	id, err := strconv.ParseInt(o.lease, 16, 64)
	if err != nil {
		return "", "", nil, exitf(exitBadArgs, "bad lease ID (%w), expecting ID in Hex", err)
	}
	var opts []clientv3.OpOption
	if id != 0 {
		opts = append(opts, clientv3.WithLease(clientv3.LeaseID(id)))
	}
	if o.prevKV {
		opts = append(opts, clientv3.WithPrevKV())
	}
	if o.ignoreValue {
		opts = append(opts, clientv3.WithIgnoreValue())
	}
	if o.ignoreLease {
		opts = append(opts, clientv3.WithIgnoreLease())
	}
	return key, value, opts, nil
}

func (a *app) putCommand() *cobra.Command {
	var o putOptions
	cmd := &cobra.Command{
		Use:   "put [options] <key> <value> (<value> can also be given from stdin)",
		Short: "Writes a key",
		Long: `Writes <value> under <key>.

Without <value> (and without --ignore-value) the whole of standard input is
the value, so "cat file | put <key>" stores a file. A value starting with '-'
must follow "--", as in "put <key> -- -value".`,
		GroupID: groupKV,
	}
	o.register(cmd.Flags())
	cmd.Run = a.run(func(cmd *cobra.Command, args []string) error {
		key, value, opts, err := o.op(args, a.stdin)
		if err != nil {
			return err
		}
		return a.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
			resp, err := cli.Put(ctx, key, value, opts...)
			if err != nil {
				return exitWith(exitErr, err)
			}
			return a.display.Put(resp)
		})
	})
	return cmd
}

// getOptions are the flags of get, shared with get lines inside txn.
type getOptions struct {
	consistency  string
	order        string
	sortBy       string
	limit        int64
	prefix       bool
	fromKey      bool
	rev          int64
	keysOnly     bool
	countOnly    bool
	valueOnly    bool
	minCreateRev int64
	maxCreateRev int64
	minModRev    int64
	maxModRev    int64
	stream       bool
}

func (o *getOptions) register(fs *pflag.FlagSet) {
	fs.StringVar(&o.consistency, "consistency", "l", "l for a linearizable read, s for a serializable one")
	fs.StringVar(&o.order, "order", "", "ASCEND or DESCEND (default ascending)")
	fs.StringVar(&o.sortBy, "sort-by", "", "sort on CREATE, KEY, MODIFY, VALUE or VERSION")
	fs.Int64Var(&o.limit, "limit", 0, "return at most this many keys")
	fs.BoolVar(&o.prefix, "prefix", false, "all keys starting with <key>")
	fs.BoolVar(&o.fromKey, "from-key", false, "all keys byte-wise greater than or equal to <key>")
	fs.Int64Var(&o.rev, "rev", 0, "read at this revision")
	fs.BoolVar(&o.keysOnly, "keys-only", false, "return keys without values")
	fs.BoolVar(&o.countOnly, "count-only", false, "return only the number of keys")
	fs.BoolVar(&o.valueOnly, "print-value-only", false, "print values only (simple format)")
	fs.Int64Var(&o.minCreateRev, "min-create-rev", 0, "lowest create revision to return")
	fs.Int64Var(&o.maxCreateRev, "max-create-rev", 0, "highest create revision to return")
	fs.Int64Var(&o.minModRev, "min-mod-rev", 0, "lowest modification revision to return")
	fs.Int64Var(&o.maxModRev, "max-mod-rev", 0, "highest modification revision to return")
	fs.BoolVar(&o.stream, "stream", false, "read through the RangeStream RPC")
}

// serializable reports whether a --consistency value asks for a serializable
// read; shown is the value etcdctl names in its error message.
func serializable(v, shown string) (bool, error) {
	switch v {
	case "s":
		return true, nil
	case "l":
		return false, nil
	}
	return false, exitf(exitBadFeature, "unknown consistency flag %q", shown)
}

func (o *getOptions) op(args []string) (string, []clientv3.OpOption, error) {
	if len(args) == 0 {
		return "", nil, exitf(exitBadArgs, "get command needs one argument as key and an optional argument as range_end")
	}
	if o.prefix && o.fromKey {
		return "", nil, exitf(exitBadArgs, "`--prefix` and `--from-key` cannot be set at the same time, choose one")
	}
	if o.keysOnly && o.countOnly {
		return "", nil, exitf(exitBadArgs, "`--keys-only` and `--count-only` cannot be set at the same time, choose one")
	}
	var opts []clientv3.OpOption
	s, err := serializable(o.consistency, o.consistency)
	if err != nil {
		return "", nil, err
	}
	if s {
		opts = append(opts, clientv3.WithSerializable())
	}
	key := args[0]
	if len(args) > 1 {
		if o.prefix || o.fromKey {
			return "", nil, exitf(exitBadArgs, "too many arguments, only accept one argument when `--prefix` or `--from-key` is set")
		}
		opts = append(opts, clientv3.WithRange(args[1]))
	}
	opts = append(opts, clientv3.WithLimit(o.limit))
	if o.rev > 0 {
		opts = append(opts, clientv3.WithRev(o.rev))
	}

	order := clientv3.SortNone
	switch strings.ToUpper(o.order) {
	case "ASCEND":
		order = clientv3.SortAscend
	case "DESCEND":
		order = clientv3.SortDescend
	case "":
	default:
		return "", nil, exitf(exitBadFeature, "bad sort order %v", o.order)
	}
	target := clientv3.SortByKey
	switch strings.ToUpper(o.sortBy) {
	case "CREATE":
		target = clientv3.SortByCreateRevision
	case "KEY", "":
		target = clientv3.SortByKey
	case "MODIFY":
		target = clientv3.SortByModRevision
	case "VALUE":
		target = clientv3.SortByValue
	case "VERSION":
		target = clientv3.SortByVersion
	default:
		return "", nil, exitf(exitBadFeature, "bad sort target %v", o.sortBy)
	}
	opts = append(opts, clientv3.WithSort(target, order))

	key, opts = rangeOptions(key, o.prefix, o.fromKey, opts)
	if o.keysOnly {
		opts = append(opts, clientv3.WithKeysOnly())
	}
	if o.countOnly {
		opts = append(opts, clientv3.WithCountOnly())
	}
	if o.minCreateRev > 0 {
		opts = append(opts, clientv3.WithMinCreateRev(o.minCreateRev))
	}
	if o.maxCreateRev > 0 {
		if o.minCreateRev > o.maxCreateRev {
			return "", nil, exitf(exitBadFeature, "getMinCreateRev(=%v) > getMaxCreateRev(=%v)", o.minCreateRev, o.maxCreateRev)
		}
		opts = append(opts, clientv3.WithMaxCreateRev(o.maxCreateRev))
	}
	if o.minModRev > 0 {
		opts = append(opts, clientv3.WithMinModRev(o.minModRev))
	}
	if o.maxModRev > 0 {
		if o.minModRev > o.maxModRev {
			return "", nil, exitf(exitBadFeature, "getMinModRev(=%v) > getMaxModRev(=%v)", o.minModRev, o.maxModRev)
		}
		opts = append(opts, clientv3.WithMaxModRev(o.maxModRev))
	}
	return key, opts, nil
}

// rangeOptions applies --prefix or --from-key. An empty key with either
// means the whole key space, which starts at "\x00".
func rangeOptions(key string, prefix, fromKey bool, opts []clientv3.OpOption) (string, []clientv3.OpOption) {
	switch {
	case prefix && key == "":
		return "\x00", append(opts, clientv3.WithFromKey())
	case prefix:
		return key, append(opts, clientv3.WithPrefix())
	case fromKey && key == "":
		return "\x00", append(opts, clientv3.WithFromKey())
	case fromKey:
		return key, append(opts, clientv3.WithFromKey())
	}
	return key, opts
}

func (a *app) getCommand() *cobra.Command {
	var o getOptions
	cmd := &cobra.Command{
		Use:     "get [options] <key> [range_end]",
		Short:   "Reads a key or the keys of a range",
		GroupID: groupKV,
	}
	o.register(cmd.Flags())
	cmd.Run = a.run(func(cmd *cobra.Command, args []string) error {
		key, opts, err := o.op(args)
		if err != nil {
			return err
		}
		return a.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
			var resp *clientv3.GetResponse
			if o.stream {
				var ch clientv3.GetStreamChan
				if ch, err = cli.GetStream(ctx, key, opts...); err == nil {
					resp, err = clientv3.GetStreamToGetResponse(ch)
				}
			} else {
				resp, err = cli.Get(ctx, key, opts...)
			}
			if err != nil {
				return exitWith(exitErr, err)
			}
			// Checked after the read, as etcdctl does.
			if _, ok := a.display.(*fieldsPrinter); o.countOnly && !ok {
				return exitf(exitBadArgs, "--count-only is only for `--write-out=fields`")
			}
			if o.valueOnly {
				sp, ok := a.display.(*simplePrinter)
				if !ok {
					return exitf(exitBadArgs, "print-value-only is only for `--write-out=simple`")
				}
				sp.valueOnly = true
			}
			return a.display.Get(resp)
		})
	})
	return cmd
}

// delOptions are the flags of del, shared with del lines inside txn.
type delOptions struct {
	prefix  bool
	prevKV  bool
	fromKey bool
	isRange bool
}

func (o *delOptions) register(fs *pflag.FlagSet) {
	fs.BoolVar(&o.prefix, "prefix", false, "delete all keys starting with <key>")
	fs.BoolVar(&o.prevKV, "prev-kv", false, "print the deleted key-value pairs")
	fs.BoolVar(&o.fromKey, "from-key", false, "delete all keys byte-wise greater than or equal to <key>")
	fs.BoolVar(&o.isRange, "range", false, "confirm a [key, range_end) deletion without the 2 second grace delay")
}

// op validates the arguments. A range given without --range is announced on
// stderr and delayed by two seconds so that an operator can still interrupt.
func (o *delOptions) op(args []string, stderr io.Writer) (string, []clientv3.OpOption, error) {
	if len(args) == 0 || len(args) > 2 {
		return "", nil, exitf(exitBadArgs, "del command needs one argument as key and an optional argument as range_end")
	}
	if o.prefix && o.fromKey {
		return "", nil, exitf(exitBadArgs, "`--prefix` and `--from-key` cannot be set at the same time, choose one")
	}
	var opts []clientv3.OpOption
	key := args[0]
	if len(args) > 1 {
		if o.prefix || o.fromKey {
			return "", nil, exitf(exitBadArgs, "too many arguments, only accept one argument when `--prefix` or `--from-key` is set")
		}
		opts = append(opts, clientv3.WithRange(args[1]))
		if !o.isRange {
			fmt.Fprintf(stderr, "Warning: Keys between %q and %q will be deleted. Please interrupt the command within next 2 seconds to cancel. "+
				"You can provide `--range` flag to avoid the delay.\n", args[0], args[1])
			time.Sleep(2 * time.Second)
		}
	}
	if o.prefix {
		key, opts = rangeOptions(key, true, false, opts)
	}
	if o.prevKV {
		opts = append(opts, clientv3.WithPrevKV())
	}
	if o.fromKey {
		key, opts = rangeOptions(key, false, true, opts)
	}
	return key, opts, nil
}

func (a *app) delCommand() *cobra.Command {
	var o delOptions
	cmd := &cobra.Command{
		Use:     "del [options] <key> [range_end]",
		Short:   "Deletes a key or the keys of [key, range_end)",
		GroupID: groupKV,
	}
	o.register(cmd.Flags())
	cmd.Run = a.run(func(cmd *cobra.Command, args []string) error {
		key, opts, err := o.op(args, a.stderr)
		if err != nil {
			return err
		}
		return a.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
			resp, err := cli.Delete(ctx, key, opts...)
			if err != nil {
				return exitWith(exitErr, err)
			}
			return a.display.Del(resp)
		})
	})
	return cmd
}

func (a *app) compactionCommand() *cobra.Command {
	var physical bool
	cmd := &cobra.Command{
		Use:     "compaction [options] <revision>",
		Short:   "Discards the key-value history before a revision",
		GroupID: groupKV,
	}
	cmd.Flags().BoolVar(&physical, "physical", false, "wait until the old revisions are physically removed")
	cmd.Run = a.run(func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return exitf(exitBadArgs, "compaction command needs 1 argument")
		}
		rev, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil {
			return exitWith(exitErr, err)
		}
		var opts []clientv3.CompactOption
		if physical {
			opts = append(opts, clientv3.WithCompactPhysical())
		}
		cli, err := a.client(cmd)
		if err != nil {
			return err
		}
		defer cli.Close()
		ctx, cancel := commandContext(cmd)
		_, err = cli.Compact(ctx, rev, opts...)
		cancel()
		if err != nil {
			return exitWith(exitErr, err)
		}
		fmt.Fprintln(a.stdout, "compacted revision", rev)
		return nil
	})
	return cmd
}
