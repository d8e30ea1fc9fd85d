package ocisource

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"

	"github.com/bootsync/bootsync/internal/boundedread"
)

const (
	stateFile    = "state.json"
	stateVersion = 1
	// maxSeen bounds the verified artifacts remembered (the last applied
	// commit's is always kept).
	maxSeen = 256
)

// state is what a source remembers between polls and processes: the
// artifacts whose signatures it verified (so a known digest costs no
// request but the HEAD, and the generation of the last applied commit is
// known), and the content kept on disk for each repository.
type state struct {
	Version int             `json:"version"`
	Seen    []seenArtifact  `json:"seen"`
	Content map[string]kept `json:"content"` // by repository
}

// seenArtifact is an artifact whose signature verified with the trusted
// keys identified by Trust.
type seenArtifact struct {
	Repository string   `json:"repository"`
	Digest     string   `json:"digest"`
	Trust      string   `json:"trust"`
	Artifact   Artifact `json:"artifact"`
}

// kept is an artifact's content on disk: <Digest hex>.tar, checked
// against TarSHA256 when a new process opens it.
type kept struct {
	Digest    string `json:"digest"`
	TarSHA256 string `json:"tarSHA256"`
	Size      int64  `json:"size"`
}

func loadState(dir string) (*state, error) {
	b, err := boundedread.ReadFile(filepath.Join(dir, stateFile), 16<<20)
	if errors.Is(err, fs.ErrNotExist) {
		return &state{Version: stateVersion, Content: map[string]kept{}}, nil
	}
	if err != nil {
		return nil, &stateError{err}
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, &stateError{fmt.Errorf("%s: %w", filepath.Join(dir, stateFile), err)}
	}
	if st.Version != stateVersion {
		return nil, &stateError{fmt.Errorf("%s has version %d; this bootsync understands %d", filepath.Join(dir, stateFile), st.Version, stateVersion)}
	}
	if st.Content == nil {
		st.Content = map[string]kept{}
	}
	return &st, nil
}

func (st *state) save(dir string) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return &stateError{err}
	}
	if err := renameio.WriteFile(filepath.Join(dir, stateFile), append(b, '\n'), 0o600); err != nil {
		return &stateError{err}
	}
	return nil
}

// verified returns the artifact at repository@digest if its signature was
// verified with the same trusted keys.
func (st *state) verified(repo, digest, trust string) (*Artifact, bool) {
	for i := len(st.Seen) - 1; i >= 0; i-- {
		s := st.Seen[i]
		if s.Repository == repo && s.Digest == digest && s.Trust == trust {
			a := s.Artifact
			return &a, true
		}
	}
	return nil, false
}

// remember records a verified artifact. The oldest records go first when
// there are too many, never the last applied commit's.
func (st *state) remember(repo, digest, trust string, a *Artifact, lastApplied string) {
	kept := st.Seen[:0]
	for _, s := range st.Seen {
		if s.Repository != repo || s.Digest != digest {
			kept = append(kept, s)
		}
	}
	st.Seen = append(kept, seenArtifact{Repository: repo, Digest: digest, Trust: trust, Artifact: *a})
	for i := 0; len(st.Seen) > maxSeen && i < len(st.Seen); {
		if st.Seen[i].Artifact.Commit == lastApplied {
			i++
			continue
		}
		st.Seen = append(st.Seen[:i], st.Seen[i+1:]...)
	}
}

// generation is the generation recorded for commit, from any artifact
// that carried it.
func (st *state) generation(commit string) (int64, bool) {
	for i := len(st.Seen) - 1; i >= 0; i-- {
		if st.Seen[i].Artifact.Commit == commit {
			return st.Seen[i].Artifact.Generation, true
		}
	}
	return 0, false
}

// tarPath is where the content of digest is kept.
func tarPath(dir, digest string) string {
	return filepath.Join(dir, "content-"+digestHex(digest)+".tar")
}

func digestHex(digest string) string {
	for i := 0; i < len(digest); i++ {
		if digest[i] == ':' {
			return digest[i+1:]
		}
	}
	return digest
}

// prune removes content files no repository keeps.
func (st *state) prune(dir string) {
	want := map[string]bool{}
	for _, k := range st.Content {
		want[filepath.Base(tarPath(dir, k.Digest))] = true
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "content-*.tar"))
	for _, m := range matches {
		if !want[filepath.Base(m)] {
			_ = os.Remove(m)
		}
	}
}
