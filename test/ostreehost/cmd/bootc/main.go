// Command bootc is the bootc stand-in of the ostree test host: bootc's
// command line over a real ostree sysroot, where libostree does every
// deployment operation. Installed in the test host as /usr/bin/bootc, and as
// /usr/bin/systemctl (whose only verb, reboot, ends the test host's boot).
// See package github.com/bootsync/bootsync/test/ostreehost.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/bootsync/bootsync/test/ostreehost/internal/standin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := standin.Main(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
