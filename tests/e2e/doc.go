// Package e2e runs the cairn binary as a real process and drives it with the
// real etcdctl v3.7 and with cairnctl, as an operator would; it also kills
// the process with SIGKILL under load to check that nothing acknowledged is
// lost.
package e2e
