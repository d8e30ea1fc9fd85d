// Command bootc is bootsync's bootc simulator. Installed as `bootc` on PATH
// in tests, it speaks bootc's command line against a state file; see
// package github.com/bootsync/bootsync/test/bootcsim for the behaviour and
// its configuration (BOOTCSIM_* environment variables).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/bootsync/bootsync/test/bootcsim/internal/sim"
)

func main() {
	cfg := sim.ConfigFromEnv(os.Getenv)
	if fi, err := os.Stdout.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		cfg.StdoutIsTerminal = true
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	out := sim.Run(ctx, cfg, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if out.Rebooted {
		// Real bootc's --apply never returns: the shutdown it started
		// kills it. The host "went down", so the caller (an agent) dies
		// too when asked; then this process dies by SIGKILL.
		if cfg.KillParent {
			_ = syscall.Kill(os.Getppid(), syscall.SIGKILL)
		}
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	os.Exit(out.ExitCode)
}
