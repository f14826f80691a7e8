package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes, the same numbers etcdctl returns.
const (
	exitOK           = 0
	exitErr          = 1
	exitBadConn      = 2
	exitPanic        = 2 // what a Go panic exits with
	exitInvalidInput = 3 // malformed txn input
	exitBadFeature   = 4 // a valid flag with a value the command cannot honour
	exitInterrupted  = 5 // the server ended a watch
	exitBadArgs      = 128
	// exitSignaled is what a shell reports for a process ended by SIGINT.
	// Only an in-process run stopped through Invocation.Context returns it;
	// the cairnctl binary, like etcdctl, simply dies from the signal.
	exitSignaled = 130
)

// errSignaled ends a long-running command whose invocation was stopped; it
// prints nothing, as a killed process would not.
var errSignaled = &exitError{code: exitSignaled}

// Invocation is everything one run of the CLI sees of its process.
type Invocation struct {
	// Args is the full command line; Args[0] names the program and is used
	// as the root command name in cobra's messages ("unknown command ...
	// for <name>"), so an installation renamed to etcdctl reads like one.
	Args []string
	// Env holds "KEY=value" pairs in process order (os.Environ()).
	Env    []string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Process is true when Run owns the whole process (the cairnctl binary):
	// only then may it change process-wide state such as the gRPC logger.
	Process bool
	// Context, when done, stops a command that otherwise runs until killed
	// (watch) as a signal would stop the process: at once, printing nothing
	// more. Nil means context.Background().
	Context context.Context
}

// exitError ends a command with a code; a nil err prints nothing.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func exitf(code int, format string, a ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, a...)}
}

func exitWith(code int, err error) error { return &exitError{code: code, err: err} }

// syncWriter serializes writes from the goroutines of one command (endpoint
// health probes, client logs) onto one stream.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// app is the state of one invocation.
type app struct {
	ctx    context.Context
	name   string
	args   []string // the full command line, Invocation.Args
	env    []string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// rawStderr is Invocation.Stderr itself, to tell whether it is a
	// terminal (the check commands' progress bar).
	rawStderr io.Writer
	proc      bool

	global globalFlags
	// display is chosen by clientConfig from --write-out and --hex.
	display printer

	code int
}

// Run executes one invocation and returns its exit code.
func Run(inv Invocation) int {
	a := &app{
		ctx:       inv.Context,
		args:      inv.Args,
		name:      "cairnctl",
		env:       inv.Env,
		stdin:     inv.Stdin,
		stdout:    &syncWriter{w: inv.Stdout},
		stderr:    &syncWriter{w: inv.Stderr},
		rawStderr: inv.Stderr,
		proc:      inv.Process,
	}
	if a.ctx == nil {
		a.ctx = context.Background()
	}
	if a.stdin == nil {
		a.stdin = strings.NewReader("")
	}
	args := inv.Args
	if len(args) > 0 {
		if n := filepath.Base(args[0]); n != "" && n != "." && n != string(filepath.Separator) {
			a.name = n
		}
		args = args[1:]
	}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(a.stdin)
	root.SetErr(a.stderr)
	// cobra writes usage-on-error to "OutOrStderr" and help to
	// "OutOrStdout", both following SetOut: point it at stderr and switch
	// to stdout only while help is written.
	root.SetOut(a.stderr)
	help := root.HelpFunc()
	root.SetHelpFunc(func(c *cobra.Command, args []string) {
		root.SetOut(a.stdout)
		defer root.SetOut(a.stderr)
		help(c, args)
		fmt.Fprintf(a.stdout, "Use \"%s options\" for a list of global command-line options (applies to all commands).\n", a.name)
	})
	if err := root.Execute(); err != nil {
		return exitErr
	}
	return a.code
}

// run adapts a command body to cobra: cobra only ever sees nil, so it never
// prints usage for our errors; we print them the etcdctl way instead.
func (a *app) run(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) {
	return func(cmd *cobra.Command, args []string) {
		a.fail(f(cmd, args))
	}
}

func (a *app) fail(err error) {
	if err == nil {
		return
	}
	var c *crash
	if errors.As(err, &c) {
		fmt.Fprintf(a.stderr, "panic: %s\n", c.msg)
		a.code = exitPanic
		return
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		ee = &exitError{code: exitErr, err: err}
	}
	if ee.err != nil {
		fmt.Fprintln(a.stderr, "Error:", ee.err)
	}
	a.code = ee.code
}

func init() {
	// etcdctl accepts unambiguous command prefixes ("etcdctl ge foo").
	cobra.EnablePrefixMatching = true
}

const (
	groupKV      = "kv"
	groupCluster = "cluster maintenance"
	groupUtility = "utility"
)

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   a.name,
		Short: "Command line client for etcd-compatible v3 servers (Cairn, etcd).",
	}
	a.global.register(root.PersistentFlags())
	root.PersistentFlags().VisitAll(func(f *pflag.Flag) {
		_ = root.PersistentFlags().MarkHidden(f.Name)
	})
	root.Flags().BoolP("help", "h", false, "help for "+a.name)
	_ = root.Flags().MarkHidden("help")

	root.AddGroup(
		&cobra.Group{ID: groupKV, Title: "Key-value commands"},
		&cobra.Group{ID: groupCluster, Title: "Cluster maintenance commands"},
		&cobra.Group{ID: groupUtility, Title: "Utility commands"},
	)
	root.AddCommand(
		a.getCommand(),
		a.putCommand(),
		a.delCommand(),
		a.txnCommand(),
		a.watchCommand(),
		a.leaseCommand(),
		a.compactionCommand(),
		a.endpointCommand(),
		a.memberCommand(),
		a.moveLeaderCommand(),
		a.snapshotCommand(),
		a.alarmCommand(),
		a.defragCommand(),
		a.checkCommand(),
		a.versionCommand(),
		a.optionsCommand(root),
	)
	root.SetHelpCommandGroupID(groupUtility)
	return root
}

func (a *app) optionsCommand(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:     "options",
		Short:   "Show the global flags",
		GroupID: groupUtility,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(a.stdout, "The following options can be passed to any command:")
			fmt.Fprintln(a.stdout)
			fs := pflag.NewFlagSet("global", pflag.ContinueOnError)
			root.PersistentFlags().VisitAll(func(f *pflag.Flag) {
				c := *f
				c.Hidden = false
				fs.AddFlag(&c)
			})
			fmt.Fprint(a.stdout, fs.FlagUsages())
		},
	}
}
