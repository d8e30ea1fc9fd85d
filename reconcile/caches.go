package reconcile

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"

	"github.com/google/renameio/v2"
)

// jsonCache is a small map persisted in the state directory. Its entries
// are content-addressed facts (an index's platform entry, a verdict for a
// digest under a set of keys), so they never go stale; a lost or damaged
// file only costs a registry request.
type jsonCache[V any] struct {
	path    string
	mu      sync.Mutex
	loaded  bool
	entries map[string]V
}

func (c *jsonCache[V]) get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.load()
	v, ok := c.entries[key]
	return v, ok
}

func (c *jsonCache[V]) put(key string, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.load()
	c.entries[key] = v
	data, err := json.MarshalIndent(c.entries, "", "  ")
	if err != nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return
	}
	_ = renameio.WriteFile(c.path, data, 0o600, renameio.WithTempDir(filepath.Dir(c.path)))
}

func (c *jsonCache[V]) load() {
	if c.loaded {
		return
	}
	c.loaded = true
	c.entries = map[string]V{}
	if data, err := os.ReadFile(c.path); err == nil {
		_ = json.Unmarshal(data, &c.entries) // a damaged cache is an empty one
	}
}

// platformCache maps an index digest and an architecture to the platform
// manifest digest bootc reports.
type platformCache struct{ c jsonCache[string] }

func newPlatformCache(stateDir string) *platformCache {
	return &platformCache{c: jsonCache[string]{path: filepath.Join(stateDir, "cache", "platforms.json")}}
}

func (p *platformCache) get(index, arch string) (string, bool) { return p.c.get(index + " " + arch) }
func (p *platformCache) put(index, arch, digest string)        { p.c.put(index+" "+arch, digest) }
