package etcoverlay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/renameio/v2"
	"golang.org/x/sys/unix"

	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/internal/faultpoint"
	"github.com/bootsync/bootsync/internal/filelock"
)

// Files the writer keeps in its state directory.
const (
	ManifestFile = "etc-manifest.json" // what bootsync manages under /etc
	OriginalsDir = "etc-originals"     // files bootsync replaced, by sha256, to restore on prune
	lockFile     = "etc.lock"          // held by Apply and RunOnChange

	manifestVersion = 1
	historyLimit    = 16
)

// manifest is the writer's durable record. It is replaced atomically and
// fsynced before and after the files it describes change, so that after a
// crash at any point the next Plan can tell every file on disk bootsync
// wrote (or was about to write) from a local edit.
type manifest struct {
	Version int    `json:"version"`
	Root    string `json:"root"`
	// Generation grows with every Apply that changes the record; a plan made
	// from an older generation is refused.
	Generation uint64            `json:"generation"`
	Files      map[string]*entry `json:"files"` // by host path, "/etc/chrony.conf"
	// Owed are the systemctl actions and reboot that changed files still
	// need; RunOnChange clears what it ran, a reboot clears everything.
	Owed *owedActions `json:"owed,omitempty"`
}

// fileState is a file's content (by digest) and metadata.
type fileState struct {
	SHA256 string
	Mode   hostspec.FileMode
	UID    int
	GID    int
}

// fileStateJSON is fileState with the mode as an octal string ("0644"), as
// everywhere else in bootsync.
type fileStateJSON struct {
	SHA256 string `json:"sha256"`
	Mode   string `json:"mode"`
	UID    int    `json:"uid"`
	GID    int    `json:"gid"`
}

func (s fileState) MarshalJSON() ([]byte, error) {
	return json.Marshal(fileStateJSON{SHA256: s.SHA256, Mode: s.Mode.String(), UID: s.UID, GID: s.GID})
}

func (s *fileState) UnmarshalJSON(b []byte) error {
	var j fileStateJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	m, err := hostspec.ParseFileMode(j.Mode)
	if err != nil {
		return err
	}
	*s = fileState{SHA256: j.SHA256, Mode: m, UID: j.UID, GID: j.GID}
	return nil
}

// entry is one managed path.
type entry struct {
	// Written is what bootsync last wrote; nil while a first write is only
	// intended (Pending).
	Written  *fileState         `json:"written,omitempty"`
	Owner    string             `json:"owner,omitempty"`
	Group    string             `json:"group,omitempty"`
	Source   string             `json:"source,omitempty"`
	OnChange *hostspec.OnChange `json:"onChange,omitempty"`
	// History holds earlier contents bootsync wrote here (oldest first). A
	// file found holding one of them was reverted (typically by bootc
	// rollback, which boots the old deployment's /etc), not edited by hand.
	History []string `json:"history,omitempty"`
	// Original is the file that was here before bootsync first wrote the
	// path; its content is kept in OriginalsDir and put back when the path
	// leaves the spec. Nil when bootsync created the file.
	Original *fileState `json:"original,omitempty"`
	// Pending is recorded before a write or removal starts and cleared when
	// it is recorded as done. Found set, it means a pass was interrupted.
	Pending *pendingWrite `json:"pending,omitempty"`
	// Pruned marks a path that left the spec and whose file bootsync
	// removed (or put the original back): History keeps what bootsync
	// wrote there, so that a file a rollback brings back (bootc boots the
	// old deployment with its old /etc) is removed again, not taken for
	// the administrator's. Such an entry is not a managed file.
	Pruned bool `json:"pruned,omitempty"`
}

// pendingWrite is an intended write (State) or removal (State == nil).
type pendingWrite struct {
	State    *fileState         `json:"state,omitempty"`
	OnChange *hostspec.OnChange `json:"onChange,omitempty"`
	// BootID of the boot the write was made in: if the host has rebooted
	// since, the change is in effect and no restart is owed for it.
	BootID string `json:"bootID,omitempty"`
}

// owedActions are systemctl actions and a reboot that applied changes need.
type owedActions struct {
	BootID       string   `json:"bootID,omitempty"`
	DaemonReload bool     `json:"daemonReload,omitempty"`
	Restart      []string `json:"restart,omitempty"`
	Reload       []string `json:"reload,omitempty"`
	Reboot       bool     `json:"reboot,omitempty"`
}

func (w *Writer) manifestPath() string { return filepath.Join(w.stateDir, ManifestFile) }

// manifestKey identifies one version of the manifest file. Every save
// renames a new file into place (a new inode), and an edit in place changes
// mtime and ctime, so an equal key means equal content.
type manifestKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime unix.Timespec
}

// loadManifest reads the manifest; a missing one is an empty record. The
// result is shared: callers must not modify it (clone it first).
func (w *Writer) loadManifest() (*manifest, error) {
	var st unix.Stat_t
	err := unix.Stat(w.manifestPath(), &st)
	if errors.Is(err, unix.ENOENT) {
		return &manifest{Version: manifestVersion, Root: w.root, Files: map[string]*entry{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", w.manifestPath(), err)
	}
	key := manifestKey{dev: uint64(st.Dev), ino: uint64(st.Ino), size: st.Size, mtime: st.Mtim, ctime: st.Ctim}
	w.cacheMu.Lock()
	defer w.cacheMu.Unlock()
	if w.cached != nil && w.cacheKey == key {
		return w.cached, nil
	}
	m, err := w.parseManifest()
	if err != nil {
		return nil, err
	}
	w.cached, w.cacheKey = m, key
	return m, nil
}

func (w *Writer) parseManifest() (*manifest, error) {
	m := &manifest{Version: manifestVersion, Root: w.root, Files: map[string]*entry{}}
	data, err := os.ReadFile(w.manifestPath())
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", w.manifestPath(), err)
	}
	if err := json.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("read manifest %s: %w (it is written atomically, so it was damaged from outside; move it aside to let bootsync start a new one, which forgets which files it manages)", w.manifestPath(), err)
	}
	if m.Version != manifestVersion {
		return nil, fmt.Errorf("read manifest %s: version %d, this bootsync understands %d", w.manifestPath(), m.Version, manifestVersion)
	}
	if m.Root != w.root {
		return nil, fmt.Errorf("read manifest %s: it records files under root %q, not %q; use a state directory per root", w.manifestPath(), m.Root, w.root)
	}
	if m.Files == nil {
		m.Files = map[string]*entry{}
	}
	return m, nil
}

// saveManifest replaces the manifest atomically and durably: renameio writes
// a temporary file in the state directory, fsyncs and renames it; the
// directory is then fsynced so the rename itself survives a power loss
// before any /etc file that depends on it is touched.
func (w *Writer) saveManifest(ctx context.Context, m *manifest) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("write manifest %s: %w", w.manifestPath(), err)
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("write manifest %s: %w", w.manifestPath(), err)
	}
	data = append(data, '\n')
	if err := renameio.WriteFile(w.manifestPath(), data, 0o600, renameio.WithTempDir(w.stateDir)); err != nil {
		return fmt.Errorf("write manifest %s: %w", w.manifestPath(), err)
	}
	faultpoint.Reach("manifest-renamed")
	if err := syncDir(w.stateDir); err != nil {
		return fmt.Errorf("write manifest %s: %w", w.manifestPath(), err)
	}
	return nil
}

// saveOriginal keeps the content of a file bootsync is about to replace for
// the first time, under its digest, durably, before the replacement starts.
func (w *Writer) saveOriginal(ctx context.Context, sha string, content []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Join(w.stateDir, OriginalsDir)
	p := filepath.Join(dir, sha)
	if existing, err := os.ReadFile(p); err == nil && w.digesterLike(sha).sum(existing) == sha {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := renameio.WriteFile(p, content, 0o600, renameio.WithTempDir(dir)); err != nil {
		return err
	}
	faultpoint.Reach("original-renamed")
	if err := syncDir(dir); err != nil {
		return err
	}
	return syncDir(w.stateDir)
}

// readOriginal returns a kept original and checks it is intact.
func (w *Writer) readOriginal(sha string) ([]byte, error) {
	p := filepath.Join(w.stateDir, OriginalsDir, sha)
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	if got := w.digesterLike(sha).sum(data); got != sha {
		return nil, fmt.Errorf("%s is damaged: its digest is %s", p, got)
	}
	return data, nil
}

// collectOriginals removes kept originals no manifest entry refers to any
// more. Leaving one behind (a crash before this runs) only costs disk space.
func (w *Writer) collectOriginals(m *manifest) error {
	dir := filepath.Join(w.stateDir, OriginalsDir)
	names, err := readDirNames(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	used := map[string]bool{}
	for _, e := range m.Files {
		if e.Original != nil {
			used[e.Original.SHA256] = true
		}
	}
	for _, n := range names {
		if !used[n] {
			if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// removeStaleStateTemps removes renameio temporary files an interrupted
// manifest write left in the state directory (".etc-manifest.json1234…").
func (w *Writer) removeStaleStateTemps() error {
	names, err := readDirNames(w.stateDir)
	if err != nil {
		return err
	}
	for _, n := range names {
		if strings.HasPrefix(n, "."+ManifestFile) {
			if err := os.Remove(filepath.Join(w.stateDir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// lock takes the writer's lock in the state directory, waiting until ctx is
// done: two bootsync processes (the agent and an operator's `bootsync
// apply`) must not interleave writes, intents and temporary-file cleanup.
// The kernel drops the lock when the process dies, so a crash never leaves
// it held.
func (w *Writer) lock(ctx context.Context) (unlock func(), err error) {
	if err := os.MkdirAll(w.stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory %s: %w", w.stateDir, err)
	}
	p := filepath.Join(w.stateDir, lockFile)
	unlock, err = filelock.Lock(ctx, p)
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, fmt.Errorf("lock %s (held by another bootsync process applying /etc): %w", p, err)
	case err != nil && errors.As(err, new(*fs.PathError)):
		return nil, fmt.Errorf("open lock %s: %w", p, err)
	case err != nil:
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return unlock, nil
}

// owed returns the manifest's owed actions that still apply in this boot.
// A reboot since they were recorded has put every change into effect.
func (m *manifest) owed(bootID string) owedActions {
	if m.Owed == nil || (bootID != "" && m.Owed.BootID != "" && m.Owed.BootID != bootID) {
		return owedActions{}
	}
	return *m.Owed
}

func (o *owedActions) add(a owedActions) {
	o.DaemonReload = o.DaemonReload || a.DaemonReload
	o.Reboot = o.Reboot || a.Reboot
	o.Restart = appendUnique(o.Restart, a.Restart...)
	o.Reload = appendUnique(o.Reload, a.Reload...)
}

func (o owedActions) empty() bool {
	return !o.DaemonReload && !o.Reboot && len(o.Restart) == 0 && len(o.Reload) == 0
}

// actions converts owed actions into the public form: a unit that is
// restarted needs no reload.
func (o owedActions) actions() Actions {
	a := Actions{DaemonReload: o.DaemonReload, RebootRequired: o.Reboot}
	a.Restart = slices.Clone(o.Restart)
	for _, u := range o.Reload {
		if !slices.Contains(o.Restart, u) {
			a.Reload = append(a.Reload, u)
		}
	}
	return a
}

func appendUnique(list []string, items ...string) []string {
	for _, it := range items {
		if !slices.Contains(list, it) {
			list = append(list, it)
		}
	}
	return list
}

func (e *entry) clone() *entry {
	if e == nil {
		return nil
	}
	c := *e
	c.History = slices.Clone(e.History)
	if e.Pending != nil {
		p := *e.Pending
		c.Pending = &p
	}
	return &c
}

func (m *manifest) clone() *manifest {
	c := *m
	c.Files = make(map[string]*entry, len(m.Files))
	for k, v := range m.Files {
		c.Files[k] = v.clone()
	}
	if m.Owed != nil {
		o := *m.Owed
		o.Restart = slices.Clone(m.Owed.Restart)
		o.Reload = slices.Clone(m.Owed.Reload)
		c.Owed = &o
	}
	return &c
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func readDirNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}
