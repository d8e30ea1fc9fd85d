package registry_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootsync/bootsync/registry"
	"github.com/bootsync/bootsync/test/registrytest"
)

const (
	goodUser = "fleet"
	goodPass = "s3cret-pull-token"
)

// requireBasicAuth makes the registry answer 401 unless the request carries
// goodUser/goodPass, as distribution does with htpasswd auth.
func requireBasicAuth(tr *registrytest.Registry) {
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if u, p, ok := r.BasicAuth(); ok && u == goodUser && p == goodPass {
			return false
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		w.WriteHeader(http.StatusUnauthorized)
		return true
	})
}

func writeAuthFile(t *testing.T, path string, entries map[string][2]string) {
	t.Helper()
	auths := map[string]any{}
	for key, up := range entries {
		auths[key] = map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(up[0] + ":" + up[1]))}
	}
	var b strings.Builder
	b.WriteString(`{"auths":{`)
	first := true
	for key, v := range auths {
		if !first {
			b.WriteString(",")
		}
		first = false
		fmt.Fprintf(&b, `%q:{"auth":%q}`, key, v.(map[string]string)["auth"])
	}
	b.WriteString("}}")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCredentialsFromHostAuthFiles(t *testing.T) {
	tr := newTestRegistry(t)
	tr.PushRandom("os/base", "stable")
	requireBasicAuth(tr)
	ref := tr.Host + "/os/base:stable"
	good := [2]string{goodUser, goodPass}
	bad := [2]string{goodUser, "wrong-password"}

	cases := []struct {
		name  string
		files map[string]map[string][2]string // path under root → entries
		ok    bool
	}{
		{"etc ostree", map[string]map[string][2]string{"/etc/ostree/auth.json": {tr.Host: good}}, true},
		{"usr lib ostree", map[string]map[string][2]string{"/usr/lib/ostree/auth.json": {tr.Host: good}}, true},
		// bootc reads only the first existing ostree file, /run before /etc.
		{"run ostree wins over etc", map[string]map[string][2]string{
			"/run/ostree/auth.json": {tr.Host: bad},
			"/etc/ostree/auth.json": {tr.Host: good},
		}, false},
		{"run ostree used", map[string]map[string][2]string{
			"/run/ostree/auth.json": {tr.Host: good},
			"/etc/ostree/auth.json": {tr.Host: bad},
		}, true},
		{"repository key more specific than host", map[string]map[string][2]string{
			"/etc/ostree/auth.json": {tr.Host: bad, tr.Host + "/os": good},
		}, true},
		{"docker URL-style key", map[string]map[string][2]string{
			"/etc/ostree/auth.json": {"https://" + tr.Host + "/v1/": good},
		}, true},
		{"docker config as fallback", map[string]map[string][2]string{
			"/home/tester/.docker/config.json": {tr.Host: good},
		}, true},
		{"containers auth after an ostree file without the registry", map[string]map[string][2]string{
			"/etc/ostree/auth.json":                     {"other.example.com": good},
			"/home/tester/.config/containers/auth.json": {tr.Host: good},
		}, true},
		{"no credentials", nil, false},
		{"another registry only", map[string]map[string][2]string{"/etc/ostree/auth.json": {"other.example.com": good}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("HOME", "/home/tester")
			t.Setenv("XDG_RUNTIME_DIR", "")
			root := t.TempDir()
			for path, entries := range tc.files {
				writeAuthFile(t, filepath.Join(root, path), entries)
			}
			c, err := registry.New(registry.WithAuthRoot(root), registry.WithRetry(fastRetry))
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Resolve(ctx(t), ref)
			if tc.ok && err != nil {
				t.Fatalf("Resolve with credentials: %v", err)
			}
			if !tc.ok {
				re := wantReason(t, err, registry.ReasonUnauthorized, http.StatusUnauthorized)
				if strings.Contains(re.Error(), "wrong-password") || strings.Contains(re.Error(), goodPass) {
					t.Fatalf("the error leaks a credential: %v", re)
				}
				if !strings.Contains(re.Error(), "/etc/ostree/auth.json") {
					t.Fatalf("the error should say where credentials are read from: %v", re)
				}
			}
		})
	}
}

func TestMalformedAuthFileIsAnErrorNamingTheFile(t *testing.T) {
	tr := newTestRegistry(t)
	tr.PushRandom("os/base", "stable")
	root := t.TempDir()
	path := filepath.Join(root, "/etc/ostree/auth.json")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(`{"auths": {"x": {"auth": "c2VjcmV0LXRva2Vu`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := registry.New(registry.WithAuthRoot(root))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Resolve(ctx(t), tr.Host+"/os/base:stable")
	if registry.ReasonOf(err) != registry.ReasonAuthConfig || !strings.Contains(err.Error(), path) {
		t.Fatalf("error = %v, want reason %q naming %s", err, registry.ReasonAuthConfig, path)
	}
	if strings.Contains(err.Error(), "c2VjcmV0LXRva2Vu") {
		t.Fatalf("the error quotes the file's content: %v", err)
	}
}

func TestHostAuthFilesOrder(t *testing.T) {
	t.Setenv("HOME", "/home/u")
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	files := registry.HostAuthFiles("/")
	want := []string{"/run/ostree/auth.json", "/etc/ostree/auth.json", "/usr/lib/ostree/auth.json"}
	if strings.Join(files.Ostree, " ") != strings.Join(want, " ") {
		t.Fatalf("ostree files = %q, want bootc's order %q", files.Ostree, want)
	}
	wantTail := []string{"/run/user/1000/containers/auth.json", fmt.Sprintf("/run/containers/%d/auth.json", os.Getuid()),
		"/home/u/.config/containers/auth.json", "/home/u/.docker/config.json"}
	if strings.Join(files.Containers, " ") != strings.Join(wantTail, " ") {
		t.Fatalf("containers files = %q, want %q", files.Containers, wantTail)
	}
}
