package registry_test

import (
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bootsync/bootsync/registry"
	"github.com/bootsync/bootsync/test/registrytest"
	"github.com/bootsync/bootsync/test/signer"
)

// writeRegistriesConf writes etc/containers/registries.conf under a new
// host root and returns the root.
func writeRegistriesConf(t *testing.T, conf string) string {
	t.Helper()
	root := t.TempDir()
	p := filepath.Join(root, "etc/containers/registries.conf")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// mirrored is a primary registry that is down and a mirror holding a
// signed copy of os/base:v1 (signed for the primary's name, as a mirror
// copy is).
type mirrored struct {
	primary, mirror *registrytest.Registry
	digest          string
}

func newMirrored(t *testing.T) *mirrored {
	t.Helper()
	m := &mirrored{primary: newTestRegistry(t), mirror: newTestRegistry(t)}
	m.digest, _ = m.mirror.PushRandom("os/base", "v1")
	s, err := signer.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Sign(t.Context(), m.mirror.Host+"/os/base@"+m.digest, signer.WithIdentity(m.primary.Host+"/os/base")); err != nil {
		t.Fatal(err)
	}
	m.primary.Close()
	m.mirror.Reset()
	return m
}

func (m *mirrored) conf(extra string) string {
	return `[[registry]]
location = "` + m.primary.Host + `"
` + extra + `
[[registry.mirror]]
location = "` + m.mirror.Host + `"
insecure = true
`
}

func TestMirrorServesTagDigestAndSignatures(t *testing.T) {
	m := newMirrored(t)
	c := newClient(t, registry.WithRegistriesConf(writeRegistriesConf(t, m.conf(""))), registry.WithInsecureRegistries(m.primary.Host))
	primary := m.primary.Host + "/os/base"

	res, err := c.Resolve(ctx(t), primary+":v1")
	if err != nil {
		t.Fatalf("resolve through the mirror: %v", err)
	}
	if res.Digest != m.digest || res.Repository != primary || res.Endpoint != m.mirror.Host+"/os/base" {
		t.Fatalf("resolved %+v, want digest %s, repository %s (what bootc is switched to), endpoint the mirror", res, m.digest, primary)
	}
	if _, err := c.PlatformDigest(ctx(t), res.Reference(), "amd64"); err != nil {
		t.Fatalf("platform digest through the mirror: %v", err)
	}
	sigs, err := c.CosignSignatures(ctx(t), res.Reference())
	if err != nil || len(sigs) != 1 {
		t.Fatalf("signatures through the mirror: %v (%d)", err, len(sigs))
	}
	if sigs[0].Endpoint != m.mirror.Host+"/os/base" || !strings.Contains(string(sigs[0].Payload), primary) {
		t.Fatalf("signature from %s, payload %s", sigs[0].Endpoint, sigs[0].Payload)
	}
	if err := c.Ping(ctx(t), primary+":v1"); err != nil {
		t.Fatalf("ping through the mirror: %v", err)
	}
	if n := m.mirror.Count("", "/v2/os/base/"); n == 0 {
		t.Fatalf("the mirror saw no request: %v", m.mirror.Recorded())
	}
}

func TestMirrorByDigestOnlyNeverResolvesTags(t *testing.T) {
	m := newMirrored(t)
	for name, conf := range map[string]string{
		"mirror-by-digest-only": m.conf("mirror-by-digest-only = true"),
		"pull-from-mirror":      strings.Replace(m.conf(""), "insecure = true", "insecure = true\npull-from-mirror = \"digest-only\"", 1),
	} {
		t.Run(name, func(t *testing.T) {
			m.mirror.Reset()
			c := newClient(t, registry.WithRegistriesConf(writeRegistriesConf(t, conf)), registry.WithInsecureRegistries(m.primary.Host))
			primary := m.primary.Host + "/os/base"
			_, err := c.Resolve(ctx(t), primary+":v1")
			if registry.ReasonOf(err) != registry.ReasonUnavailable {
				t.Fatalf("resolve a tag: %v, want the primary's failure (unavailable)", err)
			}
			if !strings.Contains(err.Error(), "digest references only") || !strings.Contains(err.Error(), "primary "+primary) {
				t.Fatalf("the error does not explain the mirror was not used for a tag: %v", err)
			}
			if n := len(m.mirror.Recorded()); n != 0 {
				t.Fatalf("a tag was looked up on a digest-only mirror: %v", m.mirror.Recorded())
			}
			// The digest goes through the mirror.
			if _, err := c.CosignSignatures(ctx(t), primary+"@"+m.digest); err != nil {
				t.Fatalf("signatures of the digest through the mirror: %v", err)
			}
			if _, err := c.PlatformDigest(ctx(t), primary+"@"+m.digest, "amd64"); err != nil {
				t.Fatalf("digest through the mirror: %v", err)
			}
		})
	}
}

func TestBlockedRegistryIsNeverContacted(t *testing.T) {
	tr := newTestRegistry(t)
	digest, _ := tr.PushRandom("os/base", "v1")
	tr.Reset()
	root := writeRegistriesConf(t, "[[registry]]\nlocation = \""+tr.Host+"\"\nblocked = true\n")
	c := newClient(t, registry.WithRegistriesConf(root), registry.WithInsecureRegistries(tr.Host))
	ref := tr.Host + "/os/base"
	for op, call := range map[string]func() error{
		"resolve":    func() error { _, err := c.Resolve(ctx(t), ref+":v1"); return err },
		"signatures": func() error { _, err := c.CosignSignatures(ctx(t), ref+"@"+digest); return err },
		"bundles":    func() error { _, err := c.SigstoreBundles(ctx(t), ref+"@"+digest); return err },
		"platform":   func() error { _, err := c.PlatformDigest(ctx(t), ref+"@"+digest, "amd64"); return err },
		"ping":       func() error { return c.Ping(ctx(t), ref+":v1") },
	} {
		err := call()
		if registry.ReasonOf(err) != registry.ReasonBlocked || !strings.Contains(err.Error(), "blocked in one of") {
			t.Errorf("%s: %v, want reason blocked naming registries.conf", op, err)
		}
	}
	if got := tr.Recorded(); len(got) != 0 {
		t.Fatalf("a blocked registry received requests: %v", got)
	}
}

func TestBlockedPrimaryStillServedByMirror(t *testing.T) {
	m := newMirrored(t)
	c := newClient(t, registry.WithRegistriesConf(writeRegistriesConf(t, m.conf("blocked = true"))))
	res, err := c.Resolve(ctx(t), m.primary.Host+"/os/base:v1")
	if err != nil || res.Endpoint != m.mirror.Host+"/os/base" {
		t.Fatalf("resolve with a blocked primary and a mirror: %+v, %v (containers/image blocks per endpoint)", res, err)
	}
}

func TestRegistriesConfDropInsAndEnvironment(t *testing.T) {
	m := newMirrored(t)
	primary := m.primary.Host + "/os/base:v1"

	t.Run("drop-in", func(t *testing.T) {
		root := writeRegistriesConf(t, "unqualified-search-registries = []\n")
		dropIn := filepath.Join(root, "etc/containers/registries.conf.d/50-mirror.conf")
		if err := os.MkdirAll(filepath.Dir(dropIn), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dropIn, []byte(m.conf("")), 0o644); err != nil {
			t.Fatal(err)
		}
		c := newClient(t, registry.WithRegistriesConf(root))
		if res, err := c.Resolve(ctx(t), primary); err != nil || res.Endpoint == "" {
			t.Fatalf("a registries.conf.d drop-in's mirror was not used: %+v, %v", res, err)
		}
	})
	t.Run("CONTAINERS_REGISTRIES_CONF", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "elsewhere.conf")
		if err := os.WriteFile(file, []byte(m.conf("")), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Setenv("CONTAINERS_REGISTRIES_CONF", file)
		c := newClient(t, registry.WithRegistriesConf(t.TempDir()))
		if res, err := c.Resolve(ctx(t), primary); err != nil || res.Endpoint != m.mirror.Host+"/os/base" {
			t.Fatalf("CONTAINERS_REGISTRIES_CONF was not honoured: %+v, %v", res, err)
		}
	})
	t.Run("no option: the reference's registry only", func(t *testing.T) {
		t.Setenv("CONTAINERS_REGISTRIES_CONF", writeRegistriesConf(t, m.conf(""))+"/etc/containers/registries.conf")
		c := newClient(t, registry.WithInsecureRegistries(m.primary.Host))
		if _, err := c.Resolve(ctx(t), primary); registry.ReasonOf(err) != registry.ReasonUnavailable {
			t.Fatalf("without WithRegistriesConf the mirror must not be used: %v", err)
		}
	})
}

func TestBrokenRegistriesConfIsAnError(t *testing.T) {
	tr := newTestRegistry(t)
	tr.PushRandom("os/base", "v1")
	tr.Reset()
	root := writeRegistriesConf(t, "[[registry]]\nlocation = \n")
	c := newClient(t, registry.WithRegistriesConf(root), registry.WithInsecureRegistries(tr.Host))
	_, err := c.Resolve(ctx(t), tr.Host+"/os/base:v1")
	if registry.ReasonOf(err) != registry.ReasonRegistriesConf || !strings.Contains(err.Error(), "registries.conf") {
		t.Fatalf("broken registries.conf: %v, want reason registries-conf naming the file", err)
	}
	if got := tr.Recorded(); len(got) != 0 {
		t.Fatalf("requests made despite a broken registries.conf: %v", got)
	}
}

// registries.conf's insecure = true skips TLS verification for that
// registry, as containers/image does; without it the certificate is
// checked.
func TestRegistriesConfInsecureSkipsTLSVerification(t *testing.T) {
	srv := httptest.NewTLSServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "https://")
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(host+"/os/base:v1", name.StrictValidation)
	if err := remote.Write(tag, img, remote.WithTransport(srv.Client().Transport)); err != nil {
		t.Fatal(err)
	}
	verified := newClient(t, registry.WithRegistriesConf(writeRegistriesConf(t, "")))
	if _, err := verified.Resolve(ctx(t), host+"/os/base:v1"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a self-signed registry without insecure = true: %v, want a certificate error", err)
	}
	skip := newClient(t, registry.WithRegistriesConf(writeRegistriesConf(t, "[[registry]]\nlocation = \""+host+"\"\ninsecure = true\n")))
	if _, err := skip.Resolve(ctx(t), host+"/os/base:v1"); err != nil {
		t.Fatalf("insecure = true: %v", err)
	}
}
