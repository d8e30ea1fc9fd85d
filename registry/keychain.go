package registry

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/docker/cli/cli/config/configfile"
	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/bootsync/bootsync/internal/boundedread"
)

// AuthFiles lists the registry credential files a Keychain reads, in
// lookup order.
type AuthFiles struct {
	// Ostree are bootc's pull-secret locations. Like bootc (ostree-ext
	// get_global_authfile), only the first one that exists is used.
	Ostree []string
	// Containers are podman's and docker's files, read after the ostree
	// file so `bootsync lock` and `image verify` also work on a workstation.
	// Every existing file is consulted, in order.
	Containers []string
}

// HostAuthFiles returns the credential files of a bootc host, every path
// placed under root ("/" or "" for the real host). The order is bootc's:
// /run/ostree/auth.json, /etc/ostree/auth.json, /usr/lib/ostree/auth.json;
// then $XDG_RUNTIME_DIR/containers/auth.json, /run/containers/<uid>/auth.json,
// ~/.config/containers/auth.json and ~/.docker/config.json.
func HostAuthFiles(root string) AuthFiles {
	under := func(p string) string {
		if root == "" || root == "/" {
			return p
		}
		return filepath.Join(root, p)
	}
	files := AuthFiles{Ostree: []string{
		under("/run/ostree/auth.json"),
		under("/etc/ostree/auth.json"),
		under("/usr/lib/ostree/auth.json"),
	}}
	if xdg := os.Getenv("XDG_RUNTIME_DIR"); xdg != "" {
		files.Containers = append(files.Containers, under(filepath.Join(xdg, "containers/auth.json")))
	}
	files.Containers = append(files.Containers, under(filepath.Join("/run/containers", strconv.Itoa(os.Getuid()), "auth.json")))
	if home, err := os.UserHomeDir(); err == nil {
		files.Containers = append(files.Containers,
			under(filepath.Join(home, ".config/containers/auth.json")),
			under(filepath.Join(home, ".docker/config.json")))
	}
	return files
}

// FileKeychain is an authn.Keychain that reads containers-auth.json(5) /
// docker config.json files. It understands "auth" (base64 user:password),
// "username"/"password", "identitytoken" and "registrytoken" entries, keyed
// by host[:port] or by a repository prefix (the most specific key wins, as
// in containers-auth.json). Credential helpers (credsStore, credHelpers) are
// not run: an agent must not exec programs named by a user's config file.
//
// Files are read on every Resolve; go-containerregistry resolves once per
// repository and client, so a changed file takes effect with a new Client.
type FileKeychain struct {
	files AuthFiles
}

// NewFileKeychain returns a keychain over files.
func NewFileKeychain(files AuthFiles) *FileKeychain { return &FileKeychain{files: files} }

// Resolve implements authn.Keychain. A missing file is skipped; a file that
// exists but cannot be read or parsed is an error naming the file (never its
// content).
func (k *FileKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	var paths []string
	for _, p := range k.files.Ostree {
		if fileExists(p) {
			paths = append(paths, p) // the first existing ostree file only, as bootc
			break
		}
	}
	paths = append(paths, k.files.Containers...)
	keys := lookupKeys(target)
	for _, p := range paths {
		cf, err := loadAuthFile(p)
		if err != nil {
			return nil, err
		}
		if cf == nil {
			continue
		}
		if cfg, ok := findAuth(cf, keys); ok {
			return authn.FromConfig(cfg), nil
		}
	}
	return authn.Anonymous, nil
}

// lookupKeys lists the keys that may hold credentials for target, most
// specific first: "host/ns/repo", "host/ns", "host".
func lookupKeys(target authn.Resource) []string {
	var keys []string
	s := target.String()
	reg := target.RegistryStr()
	for s != reg && strings.HasPrefix(s, reg+"/") {
		keys = append(keys, s)
		s = s[:strings.LastIndex(s, "/")]
	}
	return append(keys, reg)
}

func findAuth(cf *configfile.ConfigFile, keys []string) (authn.AuthConfig, bool) {
	// Index entries by normalized key: docker writes "https://host/v1/" and
	// similar URL forms for the same registry.
	norm := make(map[string]string, len(cf.AuthConfigs))
	for k := range cf.AuthConfigs {
		norm[normalizeAuthKey(k)] = k
	}
	for _, key := range keys {
		orig, ok := norm[key]
		if !ok {
			continue
		}
		ac := cf.AuthConfigs[orig]
		cfg := authn.AuthConfig{
			Username:      ac.Username,
			Password:      ac.Password,
			IdentityToken: ac.IdentityToken,
			RegistryToken: ac.RegistryToken,
		}
		if cfg == (authn.AuthConfig{}) {
			continue
		}
		return cfg, true
	}
	return authn.AuthConfig{}, false
}

func normalizeAuthKey(k string) string {
	k = strings.TrimPrefix(k, "https://")
	k = strings.TrimPrefix(k, "http://")
	k = strings.TrimSuffix(k, "/")
	for _, suffix := range []string{"/v1", "/v2"} {
		k = strings.TrimSuffix(k, suffix)
	}
	return k
}

func loadAuthFile(path string) (*configfile.ConfigFile, error) {
	data, err := boundedread.ReadFile(path, boundedread.MaxLocalFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &authFileError{path: path, err: err}
	}
	cf := configfile.New(path)
	if err := cf.LoadFromReader(bytes.NewReader(data)); err != nil {
		// The parser's message may quote content; keep only the file name.
		return nil, &authFileError{path: path, err: errors.New("the file is not valid auth.json")}
	}
	return cf, nil
}

func fileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir()
}

// authFileError is a credential file that exists but cannot be used.
type authFileError struct {
	path string
	err  error
}

func (e *authFileError) Error() string {
	return "read registry credentials " + e.path + ": " + e.err.Error()
}
func (e *authFileError) Unwrap() error { return e.err }
