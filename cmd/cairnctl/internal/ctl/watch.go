package ctl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Errors of the watch argument rules; the texts are etcdctl's.
var (
	errWatchArgs         = errors.New("bad number of arguments")
	errWatchEnvConflict  = errors.New("bad number of arguments (found conflicting environment key)")
	errWatchNoExecToRun  = errors.New("bad number of arguments (found separator --, but no commands)")
	errWatchPrefixAndEnd = errors.New("`range_end` and `--prefix` are mutually exclusive")
)

// Environment variables that give the watched range in place of arguments.
const (
	envWatchKey      = "ETCDCTL_WATCH_KEY"
	envWatchRangeEnd = "ETCDCTL_WATCH_RANGE_END"
)

// watchOptions are the flags of watch. Interactive mode parses the flags of
// every "watch" line into a fresh value: the flags of the command line itself
// then have no effect, as in etcdctl.
type watchOptions struct {
	interactive    bool
	prefix         bool
	rev            int64
	prevKV         bool
	progressNotify bool
}

func (o *watchOptions) register(fs *pflag.FlagSet) {
	fs.BoolVarP(&o.interactive, "interactive", "i", false, "read watch requests from stdin, one a line")
	fs.BoolVar(&o.prefix, "prefix", false, "watch all keys starting with <key>")
	fs.Int64Var(&o.rev, "rev", 0, "first revision to report (0: the next one)")
	fs.BoolVar(&o.prevKV, "prev-kv", false, "also print the key-value pair before each event")
	fs.BoolVar(&o.progressNotify, "progress-notify", false, "ask the server for periodic progress notifications")
}

// watch opens the watch of keys: a key, optionally followed by a range end.
// Arguments past the second are ignored, as etcdctl does.
func (o *watchOptions) watch(ctx context.Context, cli *clientv3.Client, keys []string) (clientv3.WatchChan, error) {
	if len(keys) == 0 {
		return nil, errWatchArgs
	}
	opts := []clientv3.OpOption{clientv3.WithRev(o.rev)}
	if len(keys) == 2 {
		if o.prefix {
			return nil, errWatchPrefixAndEnd
		}
		opts = append(opts, clientv3.WithRange(keys[1]))
	}
	if o.prefix {
		opts = append(opts, clientv3.WithPrefix())
	}
	if o.prevKV {
		opts = append(opts, clientv3.WithPrevKV())
	}
	if o.progressNotify {
		opts = append(opts, clientv3.WithProgressNotify())
	}
	return cli.Watch(clientv3.WithRequireLeader(ctx), keys[0], opts...), nil
}

func (a *app) watchCommand() *cobra.Command {
	var o watchOptions
	cmd := &cobra.Command{
		Use:   "watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]",
		Short: "Prints the events of a key, a prefix or a range as they happen",
		Long: `Prints every change of <key> (or of the keys under it with --prefix, or of
[key, range_end)) until the server cancels the watch or the process is
stopped.

After "--", a command runs once per event with the event in its environment:
ETCD_WATCH_REVISION, ETCD_WATCH_EVENT_TYPE, ETCD_WATCH_KEY, ETCD_WATCH_VALUE
(the last three Go-quoted). ETCDCTL_WATCH_KEY and ETCDCTL_WATCH_RANGE_END
may give the range instead of the arguments.

With -i, requests are read from stdin, one a line: "watch [options] <key>
[range_end] [-- command...]" opens another watch, "progress" asks the server
for a progress notification on every open watch.`,
		GroupID: groupKV,
	}
	o.register(cmd.Flags())
	cmd.Run = a.run(func(cmd *cobra.Command, args []string) error {
		envKey, envRange := a.getenv(envWatchKey), a.getenv(envWatchRangeEnd)
		if envKey == "" && envRange != "" {
			return exitf(exitBadArgs, "%s is empty but got %s=%q", envWatchKey, envWatchRangeEnd, envRange)
		}
		if o.interactive {
			return a.watchInteractive(cmd, envKey, envRange)
		}
		keys, execArgs, err := a.watchArgs(args, envKey, envRange)
		if err != nil {
			return exitWith(exitBadArgs, err)
		}
		cli, err := a.client(cmd)
		if err != nil {
			return err
		}
		defer cli.Close()
		ctx, cancel := context.WithCancel(a.ctx)
		defer cancel()
		ch, err := o.watch(ctx, cli, keys)
		if err != nil {
			return exitWith(exitBadArgs, err)
		}
		s := &watchSession{a: a, cli: cli}
		if err := s.print(ch, execArgs); err != nil {
			return err
		}
		if a.ctx.Err() != nil {
			return errSignaled
		}
		if err := cli.Close(); err != nil {
			return exitWith(exitBadConn, err)
		}
		return exitf(exitInterrupted, "watch is canceled by the server")
	})
	return cmd
}

// watchArgs applies etcdctl's rules to the command line of a non-interactive
// watch, args being what cobra left after the flags (the words after "--"
// included). It returns the key range and the command to run per event.
//
// The separator is looked up in the raw command line after the word "watch",
// as etcdctl does, because cobra drops it. The range is what precedes the
// last occurrence of the command's name in args: a command named like one of
// its own arguments shortens the range, exactly as in etcdctl.
func (a *app) watchArgs(args []string, envKey, envRange string) (keys, execArgs []string, err error) {
	raw := a.args
	if i := slices.Index(raw, "watch"); i >= 0 {
		raw = raw[i+1:]
	}
	sep := slices.Index(raw, "--")
	switch {
	case sep >= 0 && sep == len(raw)-1:
		return nil, nil, errWatchNoExecToRun
	case sep < 0 && len(raw) == 0 && envKey == "":
		return nil, nil, errWatchArgs
	}
	if sep >= 0 {
		execArgs = raw[sep+1:]
	}
	// A key given both ways is a conflict: with a command, any word before
	// it in args is one.
	if envKey != "" && len(args) > len(execArgs) {
		return nil, nil, errWatchEnvConflict
	}
	keys = withEnvRange(args, envKey, envRange)
	if execArgs != nil {
		keys = beforeLast(keys, execArgs[0])
	}
	return keys, execArgs, nil
}

// withEnvRange puts the range of the environment in front of keys.
func withEnvRange(keys []string, envKey, envRange string) []string {
	if envKey == "" {
		return keys
	}
	r := []string{envKey}
	if envRange != "" {
		r = append(r, envRange)
	}
	return append(r, keys...)
}

// beforeLast returns the words of keys before the last occurrence of w.
func beforeLast(keys []string, w string) []string {
	for i := len(keys) - 1; i >= 0; i-- {
		if keys[i] == w {
			return keys[:i]
		}
	}
	return nil
}

// parseWatchLine reads the words of an interactive "watch" line (after the
// word "watch") with a fresh set of watch flags.
func parseWatchLine(words []string, envKey, envRange string) (*watchOptions, []string, []string, error) {
	sep := slices.Index(words, "--")
	if sep >= 0 && sep == len(words)-1 {
		return nil, nil, nil, errWatchNoExecToRun
	}
	o := &watchOptions{}
	fs := pflag.NewFlagSet("watch", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.register(fs)
	if err := fs.Parse(words); err != nil {
		return nil, nil, nil, err
	}
	keys := fs.Args()
	if sep < 0 {
		if envKey == "" && len(keys) == 0 {
			return nil, nil, nil, errWatchArgs
		}
		if envKey != "" && len(keys) > 0 {
			return nil, nil, nil, errWatchEnvConflict
		}
	}
	var execArgs []string
	if sep >= 0 {
		execArgs = words[sep+1:]
	}
	keys = withEnvRange(keys, envKey, envRange)
	if execArgs != nil {
		keys = beforeLast(keys, execArgs[0])
	}
	return o, keys, execArgs, nil
}

// watchInteractive serves "watch" and "progress" lines from stdin until stdin
// ends, which is an error as in etcdctl (there is no other way out).
func (a *app) watchInteractive(cmd *cobra.Command, envKey, envRange string) error {
	cli, err := a.client(cmd)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithCancel(a.ctx)
	s := &watchSession{a: a, cli: cli, end: make(chan error, 1)}
	// Printers stop when their channel closes: on cancel, before the
	// client is closed by the deferred call above.
	defer s.wg.Wait()
	defer cancel()

	// The reader ends with stdin; an invocation stopped by its context
	// leaves it blocked until then.
	lines := make(chan string)
	readErr := make(chan error, 1)
	go func() {
		in := bufio.NewReader(a.stdin)
		for {
			l, err := in.ReadString('\n')
			if err != nil {
				readErr <- err
				return
			}
			select {
			case lines <- strings.TrimSuffix(l, "\n"):
			case <-ctx.Done():
				return
			}
		}
	}()

	for {
		var l string
		select {
		case <-a.ctx.Done():
			return errSignaled
		case err := <-s.end:
			return err
		case err := <-readErr:
			return exitf(exitInvalidInput, "error reading watch request line: %w", err)
		case l = <-lines:
		}
		words, err := splitArgs(l)
		if err != nil {
			return err
		}
		if len(words) == 0 {
			fmt.Fprintf(a.stderr, "Invalid command: %s (watch and progress supported)\n", l)
			continue
		}
		switch words[0] {
		case "watch":
			if len(words) < 2 && envKey == "" {
				fmt.Fprintf(a.stderr, "Invalid command %s (command type or key is not provided)\n", l)
				continue
			}
			o, keys, execArgs, err := parseWatchLine(words[1:], envKey, envRange)
			if err != nil {
				return exitWith(exitBadArgs, err)
			}
			ch, err := o.watch(ctx, cli, keys)
			if err != nil {
				fmt.Fprintf(a.stderr, "Invalid command %s (%v)\n", l, err)
				continue
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				if err := s.print(ch, execArgs); err != nil {
					s.finish(err)
				}
			}()
		case "progress":
			if err := cli.RequestProgress(clientv3.WithRequireLeader(ctx)); err != nil {
				return exitWith(exitErr, err)
			}
		default:
			fmt.Fprintf(a.stderr, "Invalid command %s (only support watch)\n", l)
		}
	}
}

// watchSession prints watch responses and runs the per-event command. In
// interactive mode several printers share it; the first fatal error of any
// of them ends the invocation, as etcdctl's exit from any goroutine does.
type watchSession struct {
	a   *app
	cli *clientv3.Client
	end chan error // capacity 1: the first fatal error of a printer
	wg  sync.WaitGroup
}

func (s *watchSession) finish(err error) {
	select {
	case s.end <- err:
	default:
	}
}

// print writes every response of ch until it closes. It returns an error
// only when the invocation must end: an output format without watch
// support, or a failed command.
func (s *watchSession) print(ch clientv3.WatchChan, execArgs []string) error {
	a := s.a
	for resp := range ch {
		if resp.Canceled {
			fmt.Fprintf(a.stderr, "watch was canceled (%v)\n", resp.Err())
		}
		if resp.IsProgressNotify() {
			fmt.Fprintf(a.stdout, "progress notify: %d\n", resp.Header.GetRevision())
		}
		if err := a.display.Watch(&resp); err != nil {
			return err
		}
		if len(execArgs) == 0 {
			continue
		}
		for _, ev := range resp.Events {
			c := exec.CommandContext(s.cli.Ctx(), execArgs[0], execArgs[1:]...)
			c.Env = append(slices.Clone(a.env),
				fmt.Sprintf("ETCD_WATCH_REVISION=%d", resp.Header.GetRevision()),
				fmt.Sprintf("ETCD_WATCH_EVENT_TYPE=%q", ev.GetType()),
				fmt.Sprintf("ETCD_WATCH_KEY=%q", ev.GetKv().GetKey()),
				fmt.Sprintf("ETCD_WATCH_VALUE=%q", ev.GetKv().GetValue()),
			)
			c.Stdout, c.Stderr = direct(a.stdout), direct(a.stderr)
			if err := c.Run(); err != nil {
				fmt.Fprintf(a.stderr, "command %q error (%v)\n", execArgs, err)
				return &exitError{code: exitErr}
			}
		}
	}
	return nil
}

// direct returns the file behind w, if any, so that a child process writes
// to it by itself rather than through a pipe, as etcdctl's children do.
func direct(w io.Writer) io.Writer {
	if s, ok := w.(*syncWriter); ok {
		if f, ok := s.w.(*os.File); ok {
			return f
		}
	}
	return w
}
