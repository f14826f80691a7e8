//go:build !unix

package storage

// fileLimit is unknown here: the engine gets MinMaxOpenFiles.
func fileLimit() uint64 { return 0 }
