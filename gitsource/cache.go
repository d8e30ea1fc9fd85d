package gitsource

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/bootsync/bootsync/internal/filelock"
)

// objectCacheSize bounds the decoded objects kept in memory. go-git's
// default (96 MiB) would make a long-running agent hold on to a large part of
// the fleet repository; hostspec reads each file about once per revision.
const objectCacheSize = 16 * cache.MiByte

// openCache opens the bare cache, creating it when missing, and verifies it
// once per process: the cache may have been left behind by a crash, a full
// disk or a bad sector. Failures are *CorruptCacheError.
func (r *Remote) openCache() error {
	if r.repo != nil {
		return nil
	}
	if err := os.MkdirAll(r.opts.cacheDir, 0o700); err != nil {
		return fmt.Errorf("create cache dir: %w", r.red.foreign(err))
	}
	// Leftovers of an interrupted creation or removal.
	stale, _ := filepath.Glob(r.dir + ".tmp-*")
	trash, _ := filepath.Glob(r.dir + ".trash-*")
	for _, p := range append(stale, trash...) {
		_ = os.RemoveAll(p)
	}
	if _, err := os.Stat(r.dir); errors.Is(err, fs.ErrNotExist) {
		if err := initCache(r.dir); err != nil {
			return fmt.Errorf("create cache %s: %w", r.dir, r.red.foreign(err))
		}
	}
	st := filesystem.NewStorageWithOptions(osfs.New(r.dir), cache.NewObjectLRU(objectCacheSize), filesystem.Options{LargeObjectThreshold: largeObject})
	packs, err := verifyCache(r.dir, st)
	if err != nil {
		_ = st.Close()
		return &CorruptCacheError{Dir: r.dir, Err: r.red.foreign(err)}
	}
	repo, err := git.Open(st, nil)
	if err != nil {
		_ = st.Close()
		return &CorruptCacheError{Dir: r.dir, Err: r.red.foreign(err)}
	}
	r.repo, r.storage, r.packs = repo, st, packs
	return nil
}

// packIndex holds the indexes of the cache's packs in memory. go-git's
// HasEncodedObject looks for a loose object file first, a path walk with an
// lstat per component for every object; checking a 20,000-file tree that
// way costs a second. The cache only ever receives packs.
type packIndex map[string]*idxfile.MemoryIndex // by pack base name

func (p packIndex) contains(h plumbing.Hash) bool {
	for _, idx := range p {
		if ok, err := idx.Contains(h); err == nil && ok {
			return true
		}
	}
	return false
}

// refresh loads the indexes of packs added since the last call and forgets
// removed ones. Indexes that fail to load are left to go-git to report.
func (p packIndex) refresh(packDir string) {
	entries, err := os.ReadDir(packDir)
	if err != nil {
		return
	}
	present := map[string]bool{}
	for _, e := range entries {
		base, ok := strings.CutSuffix(e.Name(), ".idx")
		if !ok {
			continue
		}
		present[base] = true
		if p[base] != nil {
			continue
		}
		if idx, err := readIndex(filepath.Join(packDir, e.Name())); err == nil {
			p[base] = idx
		}
	}
	for base := range p {
		if !present[base] {
			delete(p, base)
		}
	}
}

func readIndex(path string) (*idxfile.MemoryIndex, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	idx := idxfile.NewMemoryIndex()
	if err := idxfile.NewDecoder(f).Decode(idx); err != nil {
		return nil, fmt.Errorf("index %s: %w", filepath.Base(path), err)
	}
	return idx, nil
}

// cacheStamp identifies the state of a cache's packs: another process that
// re-cloned the cache (new directory) or fetched into it (pack directory
// modified) changes it.
type cacheStamp struct {
	dir, packs    uint64 // inode numbers
	packsModified int64  // mtime of objects/pack in ns
	packsMissing  bool
}

func readStamp(dir string) cacheStamp {
	var st cacheStamp
	if fi, err := os.Stat(dir); err == nil {
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			st.dir = sys.Ino
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "objects", "pack"))
	if err != nil {
		st.packsMissing = true
		return st
	}
	st.packsModified = fi.ModTime().UnixNano()
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.packs = sys.Ino
	}
	return st
}

// initCache creates an empty bare repository at dir, atomically: it is built
// beside dir and renamed into place.
func initCache(dir string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp-")
	if err != nil {
		return err
	}
	st := filesystem.NewStorage(osfs.New(tmp), cache.NewObjectLRU(objectCacheSize))
	if _, err := git.Init(st, nil); err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	return nil
}

func (r *Remote) closeCache() error {
	if r.storage == nil {
		return nil
	}
	err := r.storage.Close()
	r.repo, r.storage, r.packs, r.checkedTree, r.stamp = nil, nil, nil, nil, cacheStamp{}
	return err
}

// discardCache removes the cache. It is renamed away first, so that a crash
// during the removal cannot leave a half-deleted cache in place.
func (r *Remote) discardCache() error {
	_ = r.closeCache()
	trash, err := os.MkdirTemp(filepath.Dir(r.dir), filepath.Base(r.dir)+".trash-")
	if err != nil {
		return err
	}
	if err := os.Rename(r.dir, filepath.Join(trash, "cache")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		_ = os.RemoveAll(trash)
		return err
	}
	return os.RemoveAll(trash)
}

// verifyCache checks what a crash or bad disk breaks: every pack against its
// index and checksum, HEAD, every ref and shallow commit pointing to an
// object that exists and decodes.
func verifyCache(dir string, st *filesystem.Storage) (packIndex, error) {
	packs, err := verifyPacks(filepath.Join(dir, "objects", "pack"))
	if err != nil {
		return nil, err
	}
	if _, err := st.Reference(plumbing.HEAD); err != nil {
		return nil, fmt.Errorf("read HEAD: %w", err)
	}
	iter, err := st.IterReferences()
	if err != nil {
		return nil, fmt.Errorf("list references: %w", err)
	}
	err = iter.ForEach(func(ref *plumbing.Reference) error {
		if ref.Type() != plumbing.HashReference {
			return nil
		}
		if _, err := object.GetObject(st, ref.Hash()); err != nil {
			return fmt.Errorf("ref %s: object %s: %w", ref.Name(), ref.Hash(), err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	shallows, err := st.Shallow()
	if err != nil {
		return nil, fmt.Errorf("read shallow commits: %w", err)
	}
	for _, h := range shallows {
		if _, err := object.GetCommit(st, h); err != nil {
			return nil, fmt.Errorf("shallow commit %s: %w", h, err)
		}
	}
	return packs, nil
}

// verifyPacks checks that every pack has its index and vice versa, that each
// index is intact (go-git checks its checksum) and that each pack's content
// hashes to the checksum in its trailer and in its index: a truncated or
// overwritten pack fails here rather than in the middle of a read.
// Temporary packs of an interrupted fetch are removed.
func verifyPacks(packDir string) (packIndex, error) {
	packs := packIndex{}
	entries, err := os.ReadDir(packDir)
	if errors.Is(err, fs.ErrNotExist) {
		return packs, nil
	}
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, e := range entries {
		names[e.Name()] = true
		if strings.HasPrefix(e.Name(), "tmp_") {
			_ = os.Remove(filepath.Join(packDir, e.Name()))
		}
	}
	for name := range names {
		base, ok := strings.CutSuffix(name, ".pack")
		if !ok {
			if base, ok := strings.CutSuffix(name, ".idx"); ok && !names[base+".pack"] {
				return nil, fmt.Errorf("index %s has no pack", name)
			}
			continue
		}
		if !names[base+".idx"] {
			return nil, fmt.Errorf("pack %s has no index", name)
		}
		idx, err := verifyPack(filepath.Join(packDir, name), filepath.Join(packDir, base+".idx"))
		if err != nil {
			return nil, err
		}
		packs[base] = idx
	}
	return packs, nil
}

func verifyPack(packPath, idxPath string) (*idxfile.MemoryIndex, error) {
	idx, err := readIndex(idxPath)
	if err != nil {
		return nil, err
	}
	pack, err := os.Open(packPath)
	if err != nil {
		return nil, err
	}
	defer pack.Close()
	fi, err := pack.Stat()
	if err != nil {
		return nil, err
	}
	const header, trailer = 12, sha1.Size
	if fi.Size() < header+trailer {
		return nil, fmt.Errorf("pack %s is truncated (%d bytes)", filepath.Base(packPath), fi.Size())
	}
	h := sha1.New()
	if _, err := io.Copy(h, io.NewSectionReader(pack, 0, fi.Size()-trailer)); err != nil {
		return nil, fmt.Errorf("read pack %s: %w", filepath.Base(packPath), err)
	}
	sum := h.Sum(nil)
	stored := make([]byte, trailer)
	if _, err := pack.ReadAt(stored, fi.Size()-trailer); err != nil {
		return nil, fmt.Errorf("read pack %s: %w", filepath.Base(packPath), err)
	}
	if !bytes.Equal(sum, stored) || !bytes.Equal(sum, idx.PackfileChecksum[:]) {
		return nil, fmt.Errorf("pack %s is damaged: content hashes to %s, trailer says %s, index says %s",
			filepath.Base(packPath), hex.EncodeToString(sum), hex.EncodeToString(stored), hex.EncodeToString(idx.PackfileChecksum[:]))
	}
	return idx, nil
}

// lockFile takes an exclusive flock on path, waiting until ctx ends: polls of
// the same cache by several processes (the agent, a CLI run) are serialized.
func lockFile(ctx context.Context, path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	unlock, err := filelock.Lock(ctx, path)
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, fmt.Errorf("wait for lock %s: %w", path, err)
	case err != nil:
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return unlock, nil
}
