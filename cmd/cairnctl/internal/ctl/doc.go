// Package ctl is the engine of cairnctl, a drop-in replacement for etcdctl
// v3.7 built on the real etcd client (go.etcd.io/etcd/client/v3).
//
// # Contract
//
// Everything an operator's script can observe matches etcdctl v3.7.3: command
// names and flags, ETCDCTL_* environment variables, the bytes written to
// stdout and stderr for every output format (-w simple|json|fields|table|
// protobuf), and the exit code. Help and usage prose is our own and is not
// part of the contract; the first "Error: ..." line of a usage error is.
//
// # Mental model
//
// One call to [Run] is one process invocation. It gets its arguments,
// environment, stdin, stdout and stderr explicitly, builds a fresh cobra
// command tree bound to a per-invocation app value, and returns the exit
// code instead of calling os.Exit. Nothing lives in package variables, so
// tests run many invocations in one process.
//
// A command returns an error; an *exitError carries the exit code (the same
// numbers etcdctl uses, see the exit* constants) and the message printed as
// "Error: <message>" on stderr. Errors that cobra itself detects (unknown
// flag, unknown command) are printed by cobra exactly as in etcdctl and exit
// with code 1.
//
// Output goes through a printer chosen by --write-out once the client
// configuration is built, as in etcdctl: an invalid format is rejected before
// any request, while a format a command does not support is reported after
// the request was made (so "put -w table" writes the key, then fails).
//
// Environment variables follow etcdctl's rules: only global flags (those
// inherited by the running command) are read from ETCDCTL_<FLAG>, a flag given
// on the command line together with its variable is a fatal conflict, and
// unknown ETCDCTL_* variables are logged as warnings.
package ctl
