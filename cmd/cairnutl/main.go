package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"go.etcd.io/etcd/client/pkg/v3/logutil"

	"github.com/cairn-kv/cairn/server"
)

// Exit codes, etcdutl's numbers.
const (
	exitOK         = 0
	exitError      = 1
	exitBadFeature = 4
	exitBadArgs    = 128
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args, os.Stdout, os.Stderr))
}

// codedError ends a command with a code; its message is printed as
// "Error: <message>".
type codedError struct {
	code int
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

func exitf(code int, format string, a ...any) error {
	return &codedError{code: code, err: fmt.Errorf(format, a...)}
}

// app is one invocation.
type app struct {
	ctx            context.Context
	stdout, stderr io.Writer
	writeOut       string
	code           int
}

// run executes one invocation (args[0] is the program name) and returns
// its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{ctx: ctx, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:          "cairnutl",
		Short:        "Offline administration of Cairn's files (etcdutl's counterpart)",
		SilenceUsage: true,
	}
	root.PersistentFlags().StringVarP(&a.writeOut, "write-out", "w", "simple", "set the output format (fields, json, simple, table)")
	root.AddCommand(a.snapshotCommand(), a.defragCommand(), a.versionCommand())
	root.SetArgs(args[1:])
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SilenceErrors = true
	if err := root.Execute(); err != nil {
		// cobra's own errors: unknown command or flag, missing flag.
		fmt.Fprintln(stderr, "Error:", err)
		return exitError
	}
	return a.code
}

// do adapts a command body to cobra, printing its error etcdutl's way.
func (a *app) do(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) {
	return func(cmd *cobra.Command, args []string) {
		err := f(cmd, args)
		if err == nil {
			return
		}
		var ee *codedError
		if !errors.As(err, &ee) {
			ee = &codedError{code: exitError, err: err}
		}
		fmt.Fprintln(a.stderr, "Error:", ee.err)
		a.code = ee.code
	}
}

// logger writes etcdutl-style console logs to stderr.
func (a *app) logger() *zap.Logger {
	cfg := logutil.DefaultZapLoggerConfig.EncoderConfig
	cfg.EncodeTime = zapcore.RFC3339TimeEncoder
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(cfg), zapcore.AddSync(a.stderr), zapcore.InfoLevel)
	return zap.New(core)
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Prints the version of cairnutl",
		Run: func(*cobra.Command, []string) {
			fmt.Fprintf(a.stdout, "cairnutl version: %s\nAPI version: %s\n", server.Version, server.ClusterVersion)
		},
	}
}
