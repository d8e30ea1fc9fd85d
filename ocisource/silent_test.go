package ocisource_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bootsync/bootsync/ocisource"
	"github.com/bootsync/bootsync/registry"
	"github.com/bootsync/bootsync/test/silent"
)

// A registry that accepts the connection and never answers: the poll
// ends after the network timeout, long before the operation's deadline,
// with reason oci-timeout; the host's applied artifact and state are as
// they were, and the next poll of the answering registry finds nothing new.
func TestSilentRegistryEndsThePollAtTheNetworkTimeout(t *testing.T) {
	const netTimeout, opTimeout = 2 * time.Second, 5 * time.Minute
	f := newFleet(t)
	c1 := f.commit(map[string]string{"fleet.yaml": "v1\n"})
	f.publish("main", nil, "")
	dir := t.TempDir()
	if res := f.poll(f.source(dir), ""); res.Commit != c1 {
		t.Fatalf("first poll: %+v", res)
	}
	before := snapshot(t, dir)

	s := silent.New(t)
	c, err := registry.New(registry.WithInsecureRegistries(s.Addr()), registry.WithAuthRoot(t.TempDir()),
		registry.WithRetry(registry.NoRetry), registry.WithNetworkTimeout(netTimeout), registry.WithTimeout(opTimeout))
	if err != nil {
		t.Fatal(err)
	}
	src, err := ocisource.New("oci://"+s.Addr()+"/ops/fleet:main", ocisource.WithCacheDir(dir), ocisource.WithRegistry(c),
		ocisource.WithFleetKeys(f.pub))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := src.Poll(context.Background(), c1)
	took := time.Since(start)
	t.Logf("silent registry: %v after %s", err, took)
	if err == nil || res != nil {
		t.Fatalf("poll of a silent registry: %+v, %v; want an error", res, err)
	}
	if reasonOf(err) != "oci-timeout" || !strings.Contains(err.Error(), "poll oci://"+s.Addr()) {
		t.Errorf("poll of a silent registry: %v (reason %s), want reason oci-timeout naming the source", err, reasonOf(err))
	}
	// go-containerregistry pings https and http at once, then asks: a few
	// network timeouts at most, never the operation's deadline.
	if took > 10*netTimeout+30*time.Second {
		t.Errorf("poll of a silent registry took %s with a network timeout of %s", took, netTimeout)
	}
	if after := snapshot(t, dir); after != before {
		t.Errorf("a failed poll changed the cache:\nbefore %s\nafter  %s", before, after)
	}
	// Backing off now; the answering registry still serves the same commit.
	if _, err := src.Poll(context.Background(), c1); reasonOf(err) != "oci-backoff" {
		t.Errorf("poll right after a timeout: %v, want oci-backoff", err)
	}
	if res := f.poll(f.source(dir), c1); res.Changed || res.Fetched || res.Commit != c1 {
		t.Errorf("after the silent registry: %+v, want %s unchanged and nothing fetched", res, c1)
	}
}

// snapshot names every file under dir with its size, modification time and
// content hash.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %s %x; ", strings.TrimPrefix(p, dir), info.ModTime(), sha256.Sum256(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
