package ctl

import (
	"bufio"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func (a *app) txnCommand() *cobra.Command {
	var interactive bool
	cmd := &cobra.Command{
		Use:   "txn [options]",
		Short: "Runs compares and requests read from stdin as one transaction",
		Long: `Reads a transaction from standard input and commits it atomically.

The input has three blocks, each ended by an empty line:

  compares, one per line:  value("k") = "v", mod("k") > "5", create("k") < "9",
                           version("k") != "2", lease("k") = "0"
  requests run when every compare holds:  put k v | get k | del k (with flags)
  requests run otherwise

With -i each block is announced by a prompt.`,
		GroupID: groupKV,
	}
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "prompt for each block of the transaction")
	cmd.Run = a.run(func(cmd *cobra.Command, args []string) error {
		if len(args) != 0 {
			return exitf(exitBadArgs, "txn command does not accept argument")
		}
		in := bufio.NewReader(a.stdin)
		cli, err := a.client(cmd)
		if err != nil {
			return err
		}
		defer cli.Close()
		prompt := func(s string) {
			if interactive {
				fmt.Fprintln(a.stdout, s)
			}
		}
		prompt("compares:")
		cmps, err := a.readCompares(in)
		if err != nil {
			return err
		}
		prompt("success requests (get, put, del):")
		thenOps, err := a.readOps(in)
		if err != nil {
			return err
		}
		prompt("failure requests (get, put, del):")
		elseOps, err := a.readOps(in)
		if err != nil {
			return err
		}
		resp, err := cli.Txn(context.Background()).If(cmps...).Then(thenOps...).Else(elseOps...).Commit()
		if err != nil {
			return exitWith(exitErr, err)
		}
		return a.display.Txn(resp)
	})
	return cmd
}

// readBlock returns the trimmed lines up to the next empty one. Input that
// ends before that empty line is an error (io.EOF).
func readBlock(in *bufio.Reader, each func(line string) error) error {
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			return exitWith(exitInvalidInput, err)
		}
		line = strings.TrimSpace(line)
		if line == "" {
			return nil
		}
		if err := each(line); err != nil {
			return err
		}
	}
}

func (a *app) readCompares(in *bufio.Reader) ([]clientv3.Cmp, error) {
	var cmps []clientv3.Cmp
	err := readBlock(in, func(line string) error {
		c, err := parseCompare(line)
		if err != nil {
			return err
		}
		cmps = append(cmps, c)
		return nil
	})
	return cmps, err
}

func (a *app) readOps(in *bufio.Reader) ([]clientv3.Op, error) {
	var ops []clientv3.Op
	err := readBlock(in, func(line string) error {
		op, err := a.parseRequest(line)
		if err != nil {
			return err
		}
		ops = append(ops, op)
		return nil
	})
	return ops, err
}

// compareResults are the operators clientv3.Compare accepts.
var compareResults = map[string]bool{"=": true, "!=": true, ">": true, "<": true}

// parseCompare reads `target("key") op "value"`. The value of version,
// create, mod and lease targets is a decimal integer.
func parseCompare(line string) (clientv3.Cmp, error) {
	target, rest, ok := strings.Cut(line, "(")
	if !ok {
		return clientv3.Cmp{}, exitf(exitInvalidInput, "malformed comparison: %s", line)
	}
	var key, op, val string
	// The key and the value are Go-quoted strings; the scan stops at the
	// first mismatch and the error shows what was read up to there.
	n, err := fmt.Sscanf(rest, "%q) %s %q", &key, &op, &val)
	if n != 3 {
		return clientv3.Cmp{}, exitf(exitInvalidInput, "malformed comparison: %s; got %s(%q) %s %q", line, target, key, op, val)
	}
	if err != nil {
		return clientv3.Cmp{}, exitf(exitInvalidInput, "malformed comparison: %s (%w)", line, err)
	}

	var cmp clientv3.Cmp
	numeric := true
	switch target {
	case "ver", "version":
		cmp = clientv3.Version(key)
	case "c", "create":
		cmp = clientv3.CreateRevision(key)
	case "m", "mod":
		cmp = clientv3.ModRevision(key)
	case "lease":
		cmp = clientv3.LeaseValue(key)
	case "val", "value":
		cmp = clientv3.Value(key)
		numeric = false
	default:
		return clientv3.Cmp{}, exitf(exitInvalidInput, "malformed comparison: %s (unknown target %s)", line, target)
	}
	var v any = val
	if numeric {
		iv, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return clientv3.Cmp{}, exitf(exitInvalidInput, "invalid txn compare request: %s", line)
		}
		v = iv
	}
	if !compareResults[op] {
		// etcdctl dies in clientv3.Compare here: a Go panic, exit code 2.
		return clientv3.Cmp{}, &crash{msg: "Unknown result op"}
	}
	return clientv3.Compare(cmp, op, v), nil
}

// crash reproduces the observable end of an etcdctl panic: the panic line
// on stderr and exit code 2.
type crash struct{ msg string }

func (c *crash) Error() string { return c.msg }

// argPattern splits a request line into words: "double quoted" (Go escapes),
// 'single quoted' (verbatim) or bare.
var argPattern = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'[^']*'|[^'"\s]\S*[^'"\s]?`)

func splitArgs(line string) ([]string, error) {
	words := argPattern.FindAllString(line, -1)
	for i, w := range words {
		switch w[0] {
		case '\'':
			words[i] = w[1 : len(w)-1]
		case '"':
			if _, err := fmt.Sscanf(w, "%q", &words[i]); err != nil {
				return nil, exitWith(exitInvalidInput, err)
			}
		}
	}
	return words, nil
}

// parseRequest turns one request line ("put k v", "get --prefix k", "del k")
// into an operation, parsing it with the same flags as the real commands.
func (a *app) parseRequest(line string) (clientv3.Op, error) {
	args, err := splitArgs(line)
	if err != nil {
		return clientv3.Op{}, err
	}
	if len(args) < 2 {
		return clientv3.Op{}, exitf(exitInvalidInput, "invalid txn compare request: %s", line)
	}

	var (
		op    clientv3.Op
		opErr error
		built bool
	)
	var po putOptions
	put := &cobra.Command{Use: "put", Run: func(_ *cobra.Command, args []string) {
		built = true
		var key, value string
		var opts []clientv3.OpOption
		if key, value, opts, opErr = po.op(args, a.stdin); opErr == nil {
			op = clientv3.OpPut(key, value, opts...)
		}
	}}
	po.register(put.Flags())
	var gopt getOptions
	get := &cobra.Command{Use: "get", Run: func(_ *cobra.Command, args []string) {
		built = true
		var key string
		var opts []clientv3.OpOption
		if key, opts, opErr = gopt.op(args); opErr == nil {
			op = clientv3.OpGet(key, opts...)
		}
	}}
	gopt.register(get.Flags())
	var dopt delOptions
	del := &cobra.Command{Use: "del", Run: func(_ *cobra.Command, args []string) {
		built = true
		var key string
		var opts []clientv3.OpOption
		if key, opts, opErr = dopt.op(args, a.stderr); opErr == nil {
			op = clientv3.OpDelete(key, opts...)
		}
	}}
	dopt.register(del.Flags())

	root := &cobra.Command{Use: a.name, SilenceErrors: true}
	root.AddCommand(put, get, del)
	root.SetArgs(args)
	root.SetIn(a.stdin)
	// Usage after a flag error goes to stderr, as in etcdctl.
	root.SetOut(a.stderr)
	root.SetErr(a.stderr)
	if err := root.Execute(); err != nil {
		return clientv3.Op{}, exitf(exitInvalidInput, "invalid txn request: %s", line)
	}
	if opErr != nil {
		return clientv3.Op{}, opErr
	}
	if !built {
		return clientv3.Op{}, exitf(exitInvalidInput, "invalid txn request: %s", line)
	}
	return op, nil
}
