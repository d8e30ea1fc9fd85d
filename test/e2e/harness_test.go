// Package e2e tests the real bootsync binary end to end: a fleet repository
// served over smart HTTP by git http-backend, images in the CNCF distribution
// registry (Debian's docker-registry) signed in cosign's format, and hosts
// simulated by the bootc simulator on PATH (see package fleettest).
package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/bootsync/bootsync/test/bootcsim"
	"github.com/bootsync/bootsync/test/fleettest"
	"github.com/bootsync/bootsync/test/gitserver"
)

var bootsyncBin string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "bootsync-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		if bootsyncBin, err = fleettest.BuildBootsync(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer bootcsim.Cleanup()
		return m.Run()
	}()
	os.Exit(code)
}

func newFleet(t *testing.T) *fleettest.Fleet { return fleettest.New(t, bootsyncBin) }

func newFleetOn(t *testing.T, git *gitserver.Server) *fleettest.Fleet {
	return fleettest.NewOn(t, git, bootsyncBin)
}

var (
	hostYAML = fleettest.HostYAML
	digestOf = fleettest.DigestOf
	verbs    = fleettest.Verbs
)

type hostOptions = fleettest.HostOptions
