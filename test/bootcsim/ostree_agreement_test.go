package bootcsim_test

import (
	"archive/tar"
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/bootsync/bootsync/test/bootcsim"
)

// Behaviours the ostree test host (test/ostreehost) showed and the
// simulator now follows; docs/ostree-host.md lists them.

// Staging while a rollback is queued: ostree puts the staged deployment
// first and leaves the others in their order, so bootc still reports the
// queued rollback; the staged deployment is what boots next.
func TestStagingKeepsAQueuedRollbackButBootsStaged(t *testing.T) {
	reg, h := setup(t, bootcsim.Options{})
	b := reg.Push(t, "os", "b", bootcsim.Image(t, bootcsim.ImageOptions{Marker: "b"}))
	imgC := bootcsim.Image(t, bootcsim.ImageOptions{Marker: "c"})
	c := reg.Push(t, "os", "c", imgC)
	h.MustRun(t, "switch", b)
	h.Reboot(t)
	bDigest := h.Status(t).BootedDigest()
	h.MustRun(t, "rollback")
	h.MustRun(t, "switch", c)
	st := h.Status(t)
	if !st.Status.RollbackQueued || st.Spec.BootOrder != "rollback" || st.RollbackDigest() != initDigest || st.Status.Staged == nil {
		t.Fatalf("after staging with a queued rollback: %+v", st.Status)
	}
	h.Reboot(t)
	st = h.Status(t)
	if st.BootedDigest() != bootcsim.Digest(t, imgC) || st.RollbackDigest() != bDigest || st.Status.RollbackQueued {
		t.Fatalf("after the reboot: booted %s rollback %s queued %v; want c, b, false", st.BootedDigest(), st.RollbackDigest(), st.Status.RollbackQueued)
	}
}

// Container images ship their default configuration as /etc (bootc's
// import moves it to /usr/etc): the simulator reads it from there too.
func TestImageEtcShippedAsEtc(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, content := range map[string]string{"etc/motd": "from the image\n"} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, content); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	reg, h := setup(t, bootcsim.Options{})
	h.MustRun(t, "switch", reg.Push(t, "os", "etc", img))
	h.Reboot(t)
	if got, _ := h.ReadEtc(t, "motd"); got != "from the image\n" {
		t.Fatalf("/etc/motd = %q, want the image's", got)
	}
}
