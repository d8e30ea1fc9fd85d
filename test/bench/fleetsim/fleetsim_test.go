// Package fleetsim measures what one server core carries per transport:
// the server CPU of a no-change poll made by the agent's real poll code
// (gitsource.Remote.Poll against git http-backend; ocisource.Source.Poll
// against Debian's docker-registry), and from it the hosts one core serves
// at a 5-minute interval; and, concurrently, N simulated hosts against
// each server pinned to one core (concurrent_test.go). Run with
// test/bench/fleetsim/run.sh.
//
// Server CPU: git http-backend runs as a CGI child of this process, so its
// CPU is this process's RUSAGE_CHILDREN; docker-registry is a long-lived
// child, read from /proc/PID/stat.
package fleetsim

import (
	"context"
	"crypto/elliptic"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/ocisource"
	"github.com/bootsync/bootsync/ocisource/publish"
	"github.com/bootsync/bootsync/registry"
	"github.com/bootsync/bootsync/test/gitserver"
	"github.com/bootsync/bootsync/test/gitserver/gittest"
	"github.com/bootsync/bootsync/test/registryserver"
)

const hostFiles = 200 // a fleet repository of 200 host files

func fleetFiles() map[string]string {
	files := map[string]string{"fleet.yaml": "apiVersion: bootsync.dev/v1alpha1\nkind: Fleet\nspec:\n  image: registry.example.com/os/base:stable\n"}
	for i := range hostFiles {
		n := fmt.Sprintf("web-%03d", i)
		files["hosts/"+n+".yaml"] = "apiVersion: bootsync.dev/v1alpha1\nkind: Host\nmetadata: {name: " + n + "}\n"
	}
	return files
}

// childrenCPU is the CPU time of this process's waited-for children.
func childrenCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// registryCPU is the CPU time of the docker-registry child process.
func registryCPU(b *testing.B) time.Duration {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil || !strings.Contains(string(stat), "(docker-registry)") {
			continue
		}
		f := strings.Fields(string(stat)[strings.LastIndex(string(stat), ")")+2:])
		if ppid, _ := strconv.Atoi(f[1]); ppid != os.Getpid() {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(ut+st) * time.Second / 100 // USER_HZ
	}
	b.Fatal("no docker-registry child process found")
	return 0
}

func report(b *testing.B, cpu time.Duration, requests int) {
	perPoll := float64(cpu.Microseconds()) / float64(b.N)
	b.ReportMetric(perPoll, "server-µs/poll")
	b.ReportMetric(float64(requests)/float64(b.N), "requests/poll")
	if perPoll > 0 {
		b.ReportMetric(1e6/perPoll, "polls/s/core")
		b.ReportMetric(300*1e6/perPoll, "hosts/core@5min")
	}
}

func BenchmarkNoChangePollGit(b *testing.B) {
	git := gitserver.New(b)
	repo := gittest.NewRepo(b, git.InitBare("fleet.git"))
	repo.Commit("fleet", fleetFiles())
	repo.Push()
	src, err := gitsource.New(git.URL("fleet.git"), gitsource.WithCacheDir(b.TempDir()), gitsource.WithRef("main"), gitsource.WithAllowHTTP())
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	first, err := src.Poll(context.Background(), "")
	if err != nil {
		b.Fatal(err)
	}
	git.Reset()
	before := childrenCPU(b)
	b.ResetTimer()
	for range b.N {
		if _, err := src.Poll(context.Background(), first.Commit); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	report(b, childrenCPU(b)-before, git.Count())
}

func BenchmarkNoChangePollOCI(b *testing.B) {
	reg := registryserver.New(b)
	bare := b.TempDir()
	gittest.Git(b, bare, nil, "init", "-q", "--bare")
	repo := gittest.NewRepo(b, bare)
	repo.Commit("fleet", fleetFiles())
	client, err := registry.New(registry.WithInsecureRegistries(reg.Addr()), registry.WithAuthRoot(b.TempDir()), registry.WithRetry(registry.NoRetry))
	if err != nil {
		b.Fatal(err)
	}
	pub := publishFleet(b, repo.Dir, "oci://"+reg.Addr()+"/ops/fleet:main", client)
	src, err := ocisource.New("oci://"+reg.Addr()+"/ops/fleet:main", ocisource.WithCacheDir(b.TempDir()),
		ocisource.WithRegistry(client), ocisource.WithFleetKeys(pub))
	if err != nil {
		b.Fatal(err)
	}
	first, err := src.Poll(context.Background(), "")
	if err != nil {
		b.Fatal(err)
	}
	reg.Reset()
	before := registryCPU(b)
	b.ResetTimer()
	for range b.N {
		if _, err := src.Poll(context.Background(), first.Commit); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	report(b, registryCPU(b)-before, len(reg.Requests()))
}

func publishFleet(b *testing.B, dir, url string, client *registry.Client) string {
	key := newSigningKey(b)
	publishAt(b, dir, url, client, key)
	return key.pub
}

// signingKey is a fleet signing key: the signer and its public half's file.
type signingKey struct {
	signer signature.SignerVerifier
	pub    string
}

func newSigningKey(t testing.TB) signingKey {
	t.Helper()
	priv, pubPEM, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), func(bool) ([]byte, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	keyDir := t.TempDir()
	key, pub := filepath.Join(keyDir, "fleet.key"), filepath.Join(keyDir, "fleet.pub")
	if err := os.WriteFile(key, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	signer, err := publish.LoadSigningKey(key, "")
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{signer: signer, pub: pub}
}

// publishAt publishes the commit at dir's HEAD to url (bootsync publish).
func publishAt(t testing.TB, dir, url string, client *registry.Client, key signingKey) {
	t.Helper()
	local, err := gitsource.OpenLocal(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := local.Revision(context.Background(), "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := publish.Publish(context.Background(), publish.Input{Repository: local.Repository(), Commit: rev.Commit,
		Branch: "main", FS: rev.FS, Path: ".", Target: url, Signer: key.signer, Registry: client}); err != nil {
		t.Fatal(err)
	}
}
