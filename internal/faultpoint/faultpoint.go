// Package faultpoint is bootsync's one way for tests to stop a process at a
// named point of its work, the way a crash or a power cut would, to prove
// that a crash anywhere loses nothing: the agent's pass (reconcile, armed by
// BOOTSYNC_FAULT_POINT in the end-to-end tests) and the /etc writer's steps
// (apply/etcoverlay's crash test) both mark their points with Reach.
//
// Nothing happens at a point unless a test armed a hook; production code
// never arms one.
package faultpoint

import (
	"os"
	"sync/atomic"
	"syscall"
)

var hook atomic.Pointer[func(point string)]

// Reach marks a named point. It calls the armed hook, if any.
func Reach(point string) {
	if f := hook.Load(); f != nil {
		(*f)(point)
	}
}

// Arm makes every Reach call f (nil disarms).
func Arm(f func(point string)) {
	if f == nil {
		hook.Store(nil)
		return
	}
	hook.Store(&f)
}

// KillAt arms a hook that kills the process at the named point.
func KillAt(point string) {
	Arm(func(p string) {
		if p == point {
			Kill()
		}
	})
}

// Kill ends the process with SIGKILL, as a power cut would: no deferred
// function runs and nothing is flushed.
func Kill() {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is delivered asynchronously
}
