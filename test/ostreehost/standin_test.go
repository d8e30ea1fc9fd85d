package ostreehost_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bootsync/bootsync/test/ostreehost"
	"github.com/bootsync/bootsync/test/registryserver"
)

var tools *ostreehost.Tools

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "ostreehost-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		if tools, err = ostreehost.BuildTools(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

func push(t *testing.T, reg *registryserver.Server, tag string, img v1.Image) string {
	t.Helper()
	ref, err := name.NewTag(reg.Addr()+"/os/base:"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithContext(t.Context())); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return reg.Addr() + "/os/base@" + d.String()
}

func buildImage(t *testing.T, opts ostreehost.ImageOptions) v1.Image {
	t.Helper()
	img, err := ostreehost.BuildImage(opts)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func digestOf(ref string) string { _, d, _ := strings.Cut(ref, "@"); return d }

// The stand-in imports like bootc (layers in order, whiteouts applied,
// /etc under /usr/etc), stages and finalizes through ostree, reports
// status in bootc's schema, rolls back by reordering, and does not
// download a digest the repository already has.
func TestStandInImportStageRollback(t *testing.T) {
	ostreehost.Require(t)
	reg := registryserver.New(t)
	base := map[string]string{"etc/removable.conf": "from the base layer\n", "usr/lib/fakeos/health": "ok\n"}
	v1ref := push(t, reg, "v1", buildImage(t, ostreehost.ImageOptions{Base: base, Version: "1", Etc: map[string]string{"motd": "v1\n"}}))
	v2ref := push(t, reg, "v2", buildImage(t, ostreehost.ImageOptions{Base: base, Version: "2", Etc: map[string]string{"motd": "v2\n"},
		Whiteouts: []string{"etc/removable.conf"}}))
	h := ostreehost.New(t, ostreehost.Options{Tools: tools, Image: v1ref, Insecure: []string{reg.Addr()}})

	st := h.Status()
	if st.BootedDigest() != digestOf(v1ref) || st.Status.Staged != nil || st.Status.Rollback != nil {
		t.Fatalf("after install: %+v", st.Status)
	}
	if got, _ := h.Etc("removable.conf"); got != "from the base layer\n" {
		t.Fatalf("/etc/removable.conf = %q", got)
	}
	h.WriteVar("lib/app/data", "kept\n")

	reg.Reset()
	if r := h.Exec(nil, "bootc", "switch", "--enforce-container-sigpolicy", v2ref); r.Exit != 0 || !strings.Contains(r.Stdout, "Queued for next boot: ") {
		t.Fatalf("switch: %s", r)
	}
	if n := reg.Count("GET", "/v2/os/base/blobs/"); n == 0 {
		t.Fatalf("switch to a new image downloaded no blobs: %v", reg.Requests())
	}
	st = h.Status()
	if st.StagedDigest() != digestOf(v2ref) || st.BootedDigest() != digestOf(v1ref) {
		t.Fatalf("after switch: %+v", st.Status)
	}
	h.Reboot()
	st = h.Status()
	if st.BootedDigest() != digestOf(v2ref) || st.RollbackDigest() != digestOf(v1ref) || st.Status.RollbackQueued {
		t.Fatalf("after reboot: booted %s rollback %s queued %v", st.BootedDigest(), st.RollbackDigest(), st.Status.RollbackQueued)
	}
	if _, ok := h.Etc("removable.conf"); ok {
		t.Fatal("the whiteout in v2's layer did not remove /etc/removable.conf")
	}
	if got, _ := h.Var("lib/app/data"); got != "kept\n" {
		t.Fatalf("/var lost data: %q", got)
	}

	// Rollback reorders: no pull, no new commit, no new deployment.
	commits, deps := h.Commits(), h.Deployments()
	reg.Reset()
	if r := h.Exec(nil, "bootc", "rollback"); r.Exit != 0 || !strings.Contains(r.Stdout, "Next boot: rollback deployment") {
		t.Fatalf("rollback: %s", r)
	}
	if st = h.Status(); !st.Status.RollbackQueued || st.Spec.BootOrder != "rollback" {
		t.Fatalf("after rollback: %+v", st.Status)
	}
	h.Reboot()
	if st = h.Status(); st.BootedDigest() != digestOf(v1ref) || st.RollbackDigest() != digestOf(v2ref) {
		t.Fatalf("after the rollback reboot: booted %s rollback %s", st.BootedDigest(), st.RollbackDigest())
	}
	if n := len(reg.Requests()); n != 0 || !slices.Equal(h.Commits(), commits) || !slices.Equal(h.Deployments(), deps) {
		t.Fatalf("rollback pulled or deployed: %d registry requests, commits %v -> %v, deployments %v -> %v", n, commits, h.Commits(), deps, h.Deployments())
	}
	if got, _ := h.Etc("removable.conf"); got != "from the base layer\n" {
		t.Fatalf("v1's own /etc did not come back with the rollback: %q", got)
	}

	// v2 is still in the repository: switching to it downloads no blob.
	reg.Reset()
	if r := h.Exec(nil, "bootc", "switch", "--enforce-container-sigpolicy", v2ref); r.Exit != 0 {
		t.Fatalf("switch again: %s", r)
	}
	if n := reg.Count("GET", "/v2/os/base/blobs/"); n != 0 {
		t.Fatalf("a digest already in the repository was downloaded again: %v", reg.Requests())
	}
	calls := h.Calls()
	if last := calls[len(calls)-1]; last.Blobs != 0 || !last.Pulled {
		t.Fatalf("call log: %+v", last)
	}
}
