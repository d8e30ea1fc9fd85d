package hostspec

import (
	"crypto/sha256"
	"sync"
)

// DecodeCache shares decoded documents between loads of revisions that
// hold many identical files (a diff's base and head): a file with the same
// path, kind and content is decoded once. Decoding is pure, and the
// loader never changes a decoded document (prepare copies what it needs).
// Files of a Git tree with the same object ID are also read once.
// It is safe for concurrent use by the loads it is passed to.
type DecodeCache struct {
	mu      sync.Mutex
	entries map[decodeKey]*decodeEntry
	blobs   map[string][]byte // by Git mode and object ID; read-only
}

type decodeKey struct {
	file, kind string
	sum        [sha256.Size]byte
}

type decodeEntry struct {
	once sync.Once
	doc  any
	errs ErrorList
}

// NewDecodeCache returns an empty cache.
func NewDecodeCache() *DecodeCache {
	return &DecodeCache{entries: map[decodeKey]*decodeEntry{}, blobs: map[string][]byte{}}
}

// WithDecodeCache makes Load take decoded documents from c, and add those
// it decodes. Only documents without problems are shared: a problem's
// Error values are then never seen by two loads.
func WithDecodeCache(c *DecodeCache) LoadOption {
	return func(cfg *loadConfig) error {
		cfg.cache = c
		return nil
	}
}

// decode returns the decoded document of s, from the cache when an equal
// file was decoded before, waiting for a concurrent decode of it.
func (c *DecodeCache) decode(s *source) (any, ErrorList) {
	if c == nil {
		return decodeFile(s.file, s.data, s.wantKind)
	}
	k := decodeKey{file: s.file, kind: s.wantKind, sum: sha256.Sum256(s.data)}
	c.mu.Lock()
	e, ok := c.entries[k]
	if !ok {
		e = &decodeEntry{}
		c.entries[k] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.doc, e.errs = decodeFile(s.file, s.data, s.wantKind) })
	if len(e.errs) > 0 {
		// Each load gets its own problems, to sort and report as its own.
		return decodeFile(s.file, s.data, s.wantKind)
	}
	return e.doc, nil
}

// blob returns the content read for a Git object ID, if any.
func (c *DecodeCache) blob(oid string) ([]byte, bool) {
	if c == nil || oid == "" {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.blobs[oid]
	return b, ok
}

// putBlob records the content read for a Git object ID.
func (c *DecodeCache) putBlob(oid string, b []byte) {
	if c == nil || oid == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.blobs[oid] = b
}
