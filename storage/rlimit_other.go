//go:build !unix

package storage

// fileLimit is unknown here: the engine gets minMaxOpenFiles.
func fileLimit() uint64 { return 0 }
