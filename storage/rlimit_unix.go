//go:build unix

package storage

import "syscall"

// fileLimit is the process's soft RLIMIT_NOFILE (which Go raises to the
// hard limit at start-up), 0 if unknown.
func fileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return uint64(rl.Cur)
}
