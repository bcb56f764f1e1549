package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/meshnode/meshnode/membership"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func runVersion(stdout io.Writer) int {
	fmt.Fprintf(stdout, "node %s (peer protocol %d, %s %s/%s)\n", version, membership.ProtocolVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}
