package main

import (
	"io"
	"os"

	"google.golang.org/grpc/grpclog"

	"github.com/cairn-kv/cairn/cmd/cairnctl/internal/ctl"
)

func main() {
	// gRPC's own chatter stays quiet unless --debug; its errors reach stderr.
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, os.Stderr))
	os.Exit(ctl.Run(ctl.Invocation{
		Args:    os.Args,
		Env:     os.Environ(),
		Stdin:   os.Stdin,
		Stdout:  os.Stdout,
		Stderr:  os.Stderr,
		Process: true,
	}))
}
