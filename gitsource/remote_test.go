package gitsource_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/test/gitserver"
	"github.com/bootsync/bootsync/test/gitserver/gittest"
)

// fleet is a bare repository served over smart HTTP plus a working clone
// that commits and pushes to it.
type fleet struct {
	srv  *gitserver.Server
	repo *gittest.Repo
	url  string
}

func newFleet(t *testing.T, opts ...gitserver.Option) *fleet {
	t.Helper()
	srv := gitserver.New(t, opts...)
	repo := gittest.NewRepo(t, srv.InitBare("fleet.git"))
	return &fleet{srv: srv, repo: repo, url: srv.URL("fleet.git")}
}

// push commits files and pushes; it returns the new commit.
func (f *fleet) push(t *testing.T, msg string, files map[string]string) string {
	t.Helper()
	c := f.repo.Commit(msg, files)
	f.repo.Push()
	return c
}

func newRemote(t *testing.T, url string, opts ...gitsource.Option) *gitsource.Remote {
	t.Helper()
	r, err := gitsource.New(url, opts...)
	if err != nil {
		t.Fatalf("New(%s): %v", url, err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// fast makes retries immediate.
func fast() gitsource.Option { return gitsource.WithRetry(3, time.Millisecond) }

func poll(t *testing.T, r *gitsource.Remote, lastApplied string) *gitsource.PollResult {
	t.Helper()
	res, err := r.Poll(context.Background(), lastApplied)
	if err != nil {
		t.Fatalf("Poll(%q): %v", lastApplied, err)
	}
	return res
}

func readFile(t *testing.T, res *gitsource.PollResult, name string) string {
	t.Helper()
	b, err := fs.ReadFile(res.Revision.FS, name)
	if err != nil {
		t.Fatalf("read %s at %s: %v", name, res.Commit, err)
	}
	return string(b)
}

func requestLines(reqs []gitserver.Request) []string {
	out := make([]string, len(reqs))
	for i, r := range reqs {
		out[i] = r.String()
	}
	return out
}

func TestPollNoChangeMakesExactlyOneRequest(t *testing.T) {
	f := newFleet(t)
	c1 := f.push(t, "first", map[string]string{"fleet.yaml": "kind: Fleet\n"})
	r := newRemote(t, f.url, gitsource.WithCacheDir(t.TempDir()), gitsource.WithAllowHTTP(), gitsource.WithRef("main"))

	first := poll(t, r, "")
	if first.Commit != c1 || !first.Changed || !first.Fetched || first.Ref != "refs/heads/main" {
		t.Fatalf("first poll = %+v, want %s fetched and changed on refs/heads/main", first, c1)
	}
	if got := readFile(t, first, "fleet.yaml"); got != "kind: Fleet\n" {
		t.Fatalf("fleet.yaml = %q", got)
	}

	for i := 0; i < 3; i++ {
		f.srv.Reset()
		res := poll(t, r, c1)
		if res.Commit != c1 || res.Changed || res.Fetched {
			t.Fatalf("no-change poll = %+v, want %s unchanged and nothing fetched", res, c1)
		}
		want := []string{"GET /fleet.git/info/refs?service=git-upload-pack 200"}
		if got := requestLines(f.srv.Requests()); !slices.Equal(got, want) {
			t.Fatalf("no-change poll made requests %q, want exactly %q", got, want)
		}
		if got := readFile(t, res, "fleet.yaml"); got != "kind: Fleet\n" {
			t.Fatalf("fleet.yaml = %q", got)
		}
	}

	// A new process (new Remote) on the same cache also makes one request.
	f.srv.Reset()
	again := newRemote(t, f.url, gitsource.WithCacheDir(filepath.Dir(r.CacheDir())), gitsource.WithAllowHTTP(), gitsource.WithRef("main"))
	if res := poll(t, again, c1); res.Fetched || res.Changed {
		t.Fatalf("poll after restart = %+v, want no fetch", res)
	}
	if n := f.srv.Count(); n != 1 {
		t.Fatalf("poll after restart made %d requests (%v), want 1", n, f.srv.Requests())
	}
}

func TestPollWithBasicAuthFetchesNewCommits(t *testing.T) {
	f := newFleet(t, gitserver.WithBasicAuth("fleet-bot", "pa55-w0rd-xyz"))
	dir := t.TempDir()
	userFile, passFile := filepath.Join(dir, "user"), filepath.Join(dir, "pass")
	writeFile(t, userFile, "fleet-bot\n")
	writeFile(t, passFile, "pa55-w0rd-xyz\n")
	c1 := f.push(t, "first", map[string]string{"fleet.yaml": "v1\n", "hosts/a.yaml": "a\n"})
	r := newRemote(t, f.url, gitsource.WithCacheDir(t.TempDir()), gitsource.WithAllowHTTP(),
		gitsource.WithBasicAuthFiles(userFile, passFile))

	if res := poll(t, r, ""); res.Commit != c1 || res.Ref != "refs/heads/main" {
		t.Fatalf("first poll = %+v, want %s via HEAD -> refs/heads/main", res, c1)
	}
	// The first change replaces the shallow first clone by a full one.
	c2 := f.push(t, "second", map[string]string{"fleet.yaml": "v2\n"})
	res := poll(t, r, c1)
	if res.Commit != c2 || !res.Changed || !res.Fetched {
		t.Fatalf("poll after push = %+v, want %s fetched", res, c2)
	}
	if got := readFile(t, res, "fleet.yaml"); got != "v2\n" {
		t.Fatalf("fleet.yaml = %q, want v2", got)
	}
	if _, err := os.Stat(filepath.Join(r.CacheDir(), "shallow")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the cache is still shallow after the first change: %v", err)
	}
	// From then on a change costs the advertisement and one fetch.
	c3 := f.push(t, "third", map[string]string{"fleet.yaml": "v3\n"})
	f.srv.Reset()
	if res := poll(t, r, c2); res.Commit != c3 || !res.Fetched || readFile(t, res, "fleet.yaml") != "v3\n" {
		t.Fatalf("poll after push = %+v, want %s fetched", res, c3)
	}
	want := []string{
		"GET /fleet.git/info/refs?service=git-upload-pack 200",
		"POST /fleet.git/git-upload-pack 200",
	}
	if got := requestLines(f.srv.Requests()); !slices.Equal(got, want) {
		t.Fatalf("fetching one commit made requests %q, want %q", got, want)
	}
	c2 = c3

	// Several commits between polls: all fetched, fast-forward verified.
	f.push(t, "third", map[string]string{"hosts/b.yaml": "b\n"})
	c4 := f.push(t, "fourth", map[string]string{"hosts/a.yaml": "a2\n"})
	res = poll(t, r, c2)
	if res.Commit != c4 || !res.Changed {
		t.Fatalf("poll = %+v, want %s", res, c4)
	}
	if got := readFile(t, res, "hosts/b.yaml"); got != "b\n" {
		t.Fatalf("hosts/b.yaml = %q", got)
	}
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// The first clone is shallow; a revert then restores a file whose blob only
// older history has. The cache must receive it, even from a server whose
// reachability bitmaps count the client's (missing) history as present.
func TestPollRevertRestoresFileIntoShallowCache(t *testing.T) {
	f := newFleet(t)
	f.push(t, "base", map[string]string{"fleet.yaml": "v1\n", "files/motd": "hello\n"})
	f.repo.Remove("files/motd")
	bad := f.push(t, "drop motd", nil)
	// Reachability bitmaps, as big servers keep them, make the server count
	// every object of the client's history as present unless told the
	// client is shallow.
	gittest.Git(t, f.repo.Origin, nil, "repack", "-a", "-d", "--write-bitmap-index")
	r := newRemote(t, f.url, gitsource.WithCacheDir(t.TempDir()), gitsource.WithAllowHTTP())
	res := poll(t, r, "")
	if res.Commit != bad {
		t.Fatalf("poll = %s, want %s", res.Commit, bad)
	}
	if _, err := fs.Stat(res.Revision.FS, "files/motd"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("files/motd exists after it was removed: %v", err)
	}
	shallow, err := os.ReadFile(filepath.Join(r.CacheDir(), "shallow"))
	if err != nil || strings.TrimSpace(string(shallow)) != bad {
		t.Fatalf("first clone is not shallow at %s: %q, %v", bad, shallow, err)
	}

	reverted := f.repo.Revert(bad)
	f.repo.Push()
	res = poll(t, r, bad)
	if res.Commit != reverted || !res.Changed {
		t.Fatalf("poll = %+v, want the revert %s", res, reverted)
	}
	if got := readFile(t, res, "files/motd"); got != "hello\n" {
		t.Fatalf("files/motd after revert = %q, want hello", got)
	}
	if res.Recovered != nil {
		t.Fatalf("the revert needed a cache recovery: %v", res.Recovered)
	}
}

func TestPollRefusesRewrittenHistory(t *testing.T) {
	f := newFleet(t)
	c1 := f.push(t, "one", map[string]string{"fleet.yaml": "v1\n"})
	c2 := f.push(t, "two", map[string]string{"fleet.yaml": "v2\n"})
	cacheDir := t.TempDir()
	r := newRemote(t, f.url, gitsource.WithCacheDir(cacheDir), gitsource.WithAllowHTTP())
	if res := poll(t, r, ""); res.Commit != c2 {
		t.Fatalf("poll = %s, want %s", res.Commit, c2)
	}

	// Rewind main to c1: the classic rollback attack.
	f.repo.ForcePush(c1)
	_, err := r.Poll(context.Background(), c2)
	var nff *gitsource.NotFastForwardError
	if !errors.As(err, &nff) || nff.From != c2 || nff.To != c1 || nff.Ref != "refs/heads/main" {
		t.Fatalf("poll after rewind: err = %v, want NotFastForwardError from %s to %s", err, c2, c1)
	}
	if gitsource.ReasonOf(err) != "not-fast-forward" {
		t.Fatalf("ReasonOf = %q", gitsource.ReasonOf(err))
	}
	// It stays refused on every poll.
	if _, err := r.Poll(context.Background(), c2); !errors.As(err, &nff) {
		t.Fatalf("second poll after rewind: err = %v, want NotFastForwardError", err)
	}

	// Rewritten history on top of c1 (force-push of a different commit).
	forced := f.repo.Commit("rewritten", map[string]string{"fleet.yaml": "evil\n"})
	f.repo.ForcePush(forced)
	if _, err := r.Poll(context.Background(), c2); !errors.As(err, &nff) || nff.To != forced {
		t.Fatalf("poll after force-push: err = %v, want NotFastForwardError to %s", err, forced)
	}

	// The operator allows exactly this commit once.
	reset := newRemote(t, f.url, gitsource.WithCacheDir(cacheDir), gitsource.WithAllowHTTP(), gitsource.WithAllowReset(forced))
	res := poll(t, reset, c2)
	if res.Commit != forced || !res.Reset {
		t.Fatalf("poll with allowed reset = %+v, want %s accepted as a reset", res, forced)
	}
	// ... and only that one: another rewrite is refused again.
	other := f.repo.Commit("rewritten again", map[string]string{"fleet.yaml": "evil2\n"})
	f.repo.ForcePush(c1)
	if _, err := reset.Poll(context.Background(), forced); !errors.As(err, &nff) {
		t.Fatalf("a second, different rewind was accepted: %v", err)
	}
	_ = other

	// git revert on top of the applied commit is the supported way back.
	f.repo.ForcePush(forced)
	reverted := f.repo.Revert(forced)
	f.repo.Push()
	res = poll(t, r, forced)
	if res.Commit != reverted || res.Reset {
		t.Fatalf("poll of a revert = %+v, want %s as a plain fast-forward", res, reverted)
	}
	if got := readFile(t, res, "fleet.yaml"); got != "v1\n" {
		t.Fatalf("fleet.yaml after revert = %q, want v1", got)
	}
}

// A host whose cache was lost (or never had the history) still gets a
// correct fast-forward verdict: the shallow clone is replaced by a full one.
func TestPollDecidesFastForwardWithoutCachedHistory(t *testing.T) {
	f := newFleet(t)
	c1 := f.push(t, "one", map[string]string{"a": "1"})
	f.push(t, "two", map[string]string{"a": "2"})
	c3 := f.push(t, "three", map[string]string{"a": "3"})

	// Fresh cache, lastApplied = c1: c3 descends from c1.
	r := newRemote(t, f.url, gitsource.WithCacheDir(t.TempDir()), gitsource.WithAllowHTTP())
	if res := poll(t, r, c1); res.Commit != c3 || !res.Changed {
		t.Fatalf("poll = %+v, want %s", res, c3)
	}

	// Shallow cache from a first run, then main is rewound below the
	// shallow edge: only the full history can tell, and it says no.
	shallowDir := t.TempDir()
	s := newRemote(t, f.url, gitsource.WithCacheDir(shallowDir), gitsource.WithAllowHTTP())
	if res := poll(t, s, ""); res.Commit != c3 {
		t.Fatalf("first poll = %s", res.Commit)
	}
	f.repo.ForcePush(c1)
	_, err := s.Poll(context.Background(), c3)
	var nff *gitsource.NotFastForwardError
	if !errors.As(err, &nff) || nff.To != c1 {
		t.Fatalf("poll after rewind below the shallow edge: %v, want NotFastForwardError", err)
	}
	// A commit that does not exist upstream at all is not an ancestor either.
	_, err = s.Poll(context.Background(), strings.Repeat("ab", 20))
	if !errors.As(err, &nff) {
		t.Fatalf("poll from an unknown last applied commit: %v, want NotFastForwardError", err)
	}
}

func TestPollRequiresSignedCommits(t *testing.T) {
	f := newFleet(t)
	trusted := gittest.NewGPGKey(t, "Fleet Signer", "signer@example.com")
	stranger := gittest.NewGPGKey(t, "Stranger", "stranger@example.com")
	sshKey := gittest.NewSSHSigningKey(t)
	sshStranger := gittest.NewSSHSigningKey(t)
	keys := gitsource.WithCommitKeys(trusted.Public, "signer@example.com namespaces=\"git\" "+sshKey.AuthorizedKey+"\n")
	r := newRemote(t, f.url, gitsource.WithCacheDir(t.TempDir()), gitsource.WithAllowHTTP(), keys)

	signed := f.repo.CommitSigned(trusted, "signed", map[string]string{"fleet.yaml": "v1\n"})
	f.repo.Push()
	if res := poll(t, r, ""); res.Commit != signed {
		t.Fatalf("signed commit: %s, want %s", res.Commit, signed)
	}

	unsigned := f.push(t, "unsigned", map[string]string{"fleet.yaml": "v2\n"})
	_, err := r.Poll(context.Background(), signed)
	var uns *gitsource.UnsignedCommitError
	if !errors.As(err, &uns) || uns.Commit != unsigned || gitsource.ReasonOf(err) != "unsigned-commit" {
		t.Fatalf("unsigned commit: err = %v, want UnsignedCommitError for %s", err, unsigned)
	}

	wrong := f.repo.CommitSigned(stranger, "signed by a stranger", map[string]string{"fleet.yaml": "v3\n"})
	f.repo.Push()
	_, err = r.Poll(context.Background(), signed)
	var untrusted *gitsource.UntrustedSignatureError
	if !errors.As(err, &untrusted) || untrusted.Commit != wrong || untrusted.KeyID != stranger.KeyID || untrusted.Format != "openpgp" {
		t.Fatalf("commit signed by an untrusted key: err = %v, want UntrustedSignatureError by %s", err, stranger.KeyID)
	}
	if gitsource.ReasonOf(err) != "untrusted-signature" {
		t.Fatalf("ReasonOf = %q", gitsource.ReasonOf(err))
	}

	// SSH-signed commits verify against the SSH keys (allowed_signers line).
	sshSigned := f.repo.CommitSSHSigned(sshKey, "ssh signed", map[string]string{"fleet.yaml": "v4\n"})
	f.repo.Push()
	if res := poll(t, r, signed); res.Commit != sshSigned {
		t.Fatalf("ssh-signed commit: %s, want %s", res.Commit, sshSigned)
	}
	sshWrong := f.repo.CommitSSHSigned(sshStranger, "ssh signed by a stranger", map[string]string{"fleet.yaml": "v5\n"})
	f.repo.Push()
	_, err = r.Poll(context.Background(), sshSigned)
	if !errors.As(err, &untrusted) || untrusted.Commit != sshWrong || untrusted.Format != "ssh" ||
		!strings.HasPrefix(untrusted.KeyID, "SHA256:") {
		t.Fatalf("ssh commit by an untrusted key: err = %v", err)
	}
}

// A commit whose signature was made over different content (a tampered
// commit) does not verify, even with the right key id.
func TestTamperedSignedCommitIsRefused(t *testing.T) {
	f := newFleet(t)
	key := gittest.NewGPGKey(t, "Fleet Signer", "signer@example.com")
	signed := f.repo.CommitSigned(key, "signed", map[string]string{"fleet.yaml": "v1\n"})
	// Rewrite the commit message but keep the signature header.
	raw := gittest.Git(t, f.repo.Dir, nil, "cat-file", "commit", signed)
	tampered := strings.Replace(raw, "\n\nsigned", "\n\nsigned and tampered", 1)
	p := filepath.Join(t.TempDir(), "commit")
	writeFile(t, p, tampered+"\n")
	forged := gittest.Git(t, f.repo.Dir, nil, "hash-object", "-t", "commit", "-w", p)
	gittest.Git(t, f.repo.Dir, nil, "update-ref", "refs/heads/main", forged)
	f.repo.Push()

	r := newRemote(t, f.url, gitsource.WithCacheDir(t.TempDir()), gitsource.WithAllowHTTP(), gitsource.WithCommitKeys(key.Public))
	_, err := r.Poll(context.Background(), "")
	var untrusted *gitsource.UntrustedSignatureError
	if !errors.As(err, &untrusted) || untrusted.Commit != forged || untrusted.KeyID != key.KeyID {
		t.Fatalf("tampered commit: err = %v, want UntrustedSignatureError naming key %s", err, key.KeyID)
	}
}

func TestPollRecoversCorruptCache(t *testing.T) {
	corruptions := map[string]func(t *testing.T, dir string){
		"truncated pack": func(t *testing.T, dir string) {
			for _, p := range glob(t, dir, "objects/pack/*.pack") {
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(p, fi.Size()/2); err != nil {
					t.Fatal(err)
				}
			}
		},
		"flipped byte in pack": func(t *testing.T, dir string) {
			for _, p := range glob(t, dir, "objects/pack/*.pack") {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				b[len(b)/2] ^= 0xff
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		},
		"garbage HEAD": func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "HEAD"), "\x00\x01garbage")
		},
		"garbage ref": func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "refs/heads/main"), "not a hash at all\n")
		},
		"missing objects": func(t *testing.T, dir string) {
			for _, p := range glob(t, dir, "objects/pack/*") {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			}
		},
		"missing index": func(t *testing.T, dir string) {
			for _, p := range glob(t, dir, "objects/pack/*.idx") {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			}
		},
	}
	for name, corrupt := range corruptions {
		t.Run(name, func(t *testing.T) {
			f := newFleet(t)
			c1 := f.push(t, "one", map[string]string{"fleet.yaml": "v1\n", "hosts/a.yaml": "a\n"})
			cacheDir := t.TempDir()
			r := newRemote(t, f.url, gitsource.WithCacheDir(cacheDir), gitsource.WithAllowHTTP())
			poll(t, r, "")
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			corrupt(t, r.CacheDir())

			// The next process finds the damage, re-clones and carries on.
			again := newRemote(t, f.url, gitsource.WithCacheDir(cacheDir), gitsource.WithAllowHTTP())
			res := poll(t, again, c1)
			if res.Recovered == nil || gitsource.ReasonOf(res.Recovered) != "corrupt-cache" {
				t.Fatalf("poll after %s: Recovered = %v, want the corruption reported", name, res.Recovered)
			}
			if res.Commit != c1 || res.Changed || !res.Fetched {
				t.Fatalf("poll after %s = %+v, want %s re-fetched", name, res, c1)
			}
			if got := readFile(t, res, "hosts/a.yaml"); got != "a\n" {
				t.Fatalf("hosts/a.yaml = %q", got)
			}
			// And the recovered cache is healthy: a no-change poll again.
			if res := poll(t, again, c1); res.Recovered != nil || res.Fetched {
				t.Fatalf("poll after recovery = %+v, want a clean no-change poll", res)
			}
		})
	}
}

// A blob missing from an otherwise valid cache (a pack deleted while other
// packs remain) is found before the revision is handed out.
func TestPollDetectsMissingBlob(t *testing.T) {
	f := newFleet(t)
	c1 := f.push(t, "one", map[string]string{"fleet.yaml": "v1\n"})
	f.push(t, "two", map[string]string{"hosts/a.yaml": "a\n"})
	cacheDir := t.TempDir()
	// An old last applied commit: the first clone is a full one.
	r := newRemote(t, f.url, gitsource.WithCacheDir(cacheDir), gitsource.WithAllowHTTP())
	c2 := poll(t, r, c1).Commit
	before := glob(t, r.CacheDir(), "objects/pack/*.pack")
	c3 := f.push(t, "three", map[string]string{"hosts/new.yaml": "new\n"})
	if res := poll(t, r, c2); res.Commit != c3 {
		t.Fatalf("poll = %+v, want %s", res, c3)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// Delete the first pack: c3's tree still references fleet.yaml's blob.
	for _, p := range before {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(strings.TrimSuffix(p, ".pack") + ".idx"); err != nil {
			t.Fatal(err)
		}
	}
	if left := glob(t, r.CacheDir(), "objects/pack/*.pack"); len(left) != 1 {
		t.Fatalf("packs left: %v, want the one of the last fetch", left)
	}
	again := newRemote(t, f.url, gitsource.WithCacheDir(cacheDir), gitsource.WithAllowHTTP())
	res := poll(t, again, c3)
	if res.Recovered == nil {
		t.Fatalf("poll with a missing blob: Recovered = nil, want the damage found")
	}
	if got := readFile(t, res, "fleet.yaml"); got != "v1\n" {
		t.Fatalf("fleet.yaml = %q", got)
	}
}

func glob(t *testing.T, dir, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil || len(m) == 0 {
		t.Fatalf("no %s in %s: %v", pattern, dir, err)
	}
	return m
}

func TestPollRetriesThenReportsUnreachable(t *testing.T) {
	f := newFleet(t)
	c1 := f.push(t, "one", map[string]string{"a": "1"})
	r := newRemote(t, f.url, gitsource.WithCacheDir(t.TempDir()), gitsource.WithAllowHTTP(), gitsource.WithRetry(3, 5*time.Second))
	var waits []time.Duration
	gitsource.SetRetrySleep(r, func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		return nil
	})
	f.srv.Stop()
	_, err := r.Poll(context.Background(), "")
	var tr *gitsource.TransientError
	if !errors.As(err, &tr) || tr.Attempts != 3 || gitsource.ReasonOf(err) != "unreachable" {
		t.Fatalf("poll of a stopped server: err = %v, want TransientError after 3 attempts", err)
	}
	if len(waits) != 2 {
		t.Fatalf("waited %d times (%v), want 2 waits between 3 attempts", len(waits), waits)
	}
	for i, d := range waits {
		if ceiling := 5 * time.Second << i; d < 0 || d > ceiling {
			t.Fatalf("wait %d = %s, want within [0, %s]", i+1, d, ceiling)
		}
	}
	if !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), f.url) {
		t.Fatalf("error does not say what failed where: %v", err)
	}

	// The server comes back while Poll waits: the retry succeeds.
	f.srv.Stop()
	gitsource.SetRetrySleep(r, func(ctx context.Context, d time.Duration) error {
		return f.srv.Start()
	})
	res, err := r.Poll(context.Background(), "")
	if err != nil || res.Commit != c1 {
		t.Fatalf("poll with the server back after one failure: %v, %v", res, err)
	}
}

func TestPollPermanentErrorsAreNotRetried(t *testing.T) {
	f := newFleet(t, gitserver.WithBasicAuth("fleet-bot", "right-password"))
	f.push(t, "one", map[string]string{"a": "1"})
	dir := t.TempDir()
	passFile := filepath.Join(dir, "pass")
	writeFile(t, passFile, "wrong-password-123\n")
	retried := false
	sleep := func(context.Context, time.Duration) error { retried = true; return nil }

	r := newRemote(t, f.url, gitsource.WithCacheDir(t.TempDir()), gitsource.WithAllowHTTP(), gitsource.WithBasicAuthFiles("", passFile))
	gitsource.SetRetrySleep(r, sleep)
	f.srv.Reset()
	_, err := r.Poll(context.Background(), "")
	var auth *gitsource.AuthError
	if !errors.As(err, &auth) || gitsource.ReasonOf(err) != "auth" {
		t.Fatalf("wrong password: err = %v, want AuthError", err)
	}
	if n := f.srv.Count(); n != 1 || retried {
		t.Fatalf("auth failure made %d requests (retried: %v), want exactly 1", n, retried)
	}

	userFile := filepath.Join(dir, "user")
	writeFile(t, userFile, "fleet-bot\n")
	writeFile(t, passFile, "right-password\n")
	missing := newRemote(t, f.srv.URL("missing.git"), gitsource.WithCacheDir(t.TempDir()), gitsource.WithAllowHTTP(), gitsource.WithBasicAuthFiles(userFile, passFile))
	gitsource.SetRetrySleep(missing, sleep)
	f.srv.Reset()
	_, err = missing.Poll(context.Background(), "")
	var nf *gitsource.NotFoundError
	if !errors.As(err, &nf) || gitsource.ReasonOf(err) != "not-found" {
		t.Fatalf("missing repository: err = %v, want NotFoundError", err)
	}
	if n := f.srv.Count(); n != 1 || retried {
		t.Fatalf("missing repository made %d requests (retried: %v), want exactly 1", n, retried)
	}

	noRef := newRemote(t, f.url, gitsource.WithCacheDir(t.TempDir()), gitsource.WithAllowHTTP(),
		gitsource.WithBasicAuthFiles(userFile, passFile), gitsource.WithRef("release"))
	_, err = noRef.Poll(context.Background(), "")
	if !errors.As(err, &nf) || nf.Ref != "ref release" {
		t.Fatalf("missing ref: err = %v, want NotFoundError for ref release", err)
	}

	// The credentials are read at every poll: rotated files are picked up.
	fixed := newRemote(t, f.url, gitsource.WithCacheDir(t.TempDir()), gitsource.WithAllowHTTP(), gitsource.WithBasicAuthFiles(userFile, passFile))
	writeFile(t, passFile, "wrong-again\n")
	if _, err := fixed.Poll(context.Background(), ""); !errors.As(err, &auth) {
		t.Fatalf("wrong password: err = %v, want AuthError", err)
	}
	writeFile(t, passFile, "right-password\n")
	if res := poll(t, fixed, ""); res.Commit == "" {
		t.Fatal("no commit after fixing the password file")
	}
}

func TestCredentialsAreRedacted(t *testing.T) {
	const user, password, token = "deploy", "hunter2-very-secret", "glpat-abcdefghijklmnopqrstuvwxyz"
	f := newFleet(t, gitserver.WithBasicAuth(user, "the-real-one"))
	f.push(t, "one", map[string]string{"a": "1"})
	dir := t.TempDir()
	passFile, tokenFile := filepath.Join(dir, "pass"), filepath.Join(dir, "token")
	writeFile(t, passFile, password+"\n")
	writeFile(t, tokenFile, token+"\n")

	inURL := newRemote(t, f.srv.URLWithPassword("fleet.git", user, password), gitsource.WithCacheDir(t.TempDir()), gitsource.WithAllowHTTP(), fast())
	inFile := newRemote(t, f.url, gitsource.WithCacheDir(t.TempDir()), gitsource.WithAllowHTTP(), gitsource.WithBasicAuthFiles("", passFile), fast())
	bearer := newRemote(t, f.url, gitsource.WithCacheDir(t.TempDir()), gitsource.WithAllowHTTP(), gitsource.WithBearerTokenFile(tokenFile), fast())
	for _, r := range []*gitsource.Remote{inURL, inFile, bearer} {
		for _, s := range []string{fmt.Sprintf("%+v", r), fmt.Sprintf("%#v", r), fmt.Sprint(r), r.URL(), r.CacheDir()} {
			assertNoSecret(t, s, password, token)
		}
		_, err := r.Poll(context.Background(), "")
		if gitsource.ReasonOf(err) != "auth" {
			t.Fatalf("%v: err = %v, want an auth error", r, err)
		}
		assertErrorChainHasNoSecret(t, err, password, token)
	}
	// Down server: the URL with a password shows up in a network error.
	f.srv.Stop()
	_, err := inURL.Poll(context.Background(), "")
	if gitsource.ReasonOf(err) != "unreachable" {
		t.Fatalf("err = %v, want unreachable", err)
	}
	assertErrorChainHasNoSecret(t, err, password, token)
	if !strings.Contains(err.Error(), "http://***@"+f.srv.Addr()+"/fleet.git") {
		t.Fatalf("error does not name the redacted URL: %v", err)
	}
	// Invalid options name the URL redacted too.
	_, err = gitsource.New(f.srv.URLWithPassword("fleet.git", user, password))
	if err == nil {
		t.Fatal("New without a cache dir succeeded")
	}
	assertErrorChainHasNoSecret(t, err, password, token)
}

func assertNoSecret(t *testing.T, s string, secrets ...string) {
	t.Helper()
	for _, secret := range secrets {
		if strings.Contains(s, secret) {
			t.Fatalf("secret %q leaked in %q", secret, s)
		}
	}
}

// assertErrorChainHasNoSecret checks the message of err and of every error
// reachable from it with Unwrap.
func assertErrorChainHasNoSecret(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("expected an error")
	}
	queue := []error{err}
	for len(queue) > 0 {
		e := queue[0]
		queue = queue[1:]
		assertNoSecret(t, e.Error(), secrets...)
		assertNoSecret(t, fmt.Sprintf("%+v", e), secrets...)
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			if inner := u.Unwrap(); inner != nil {
				queue = append(queue, inner)
			}
		case interface{ Unwrap() []error }:
			queue = append(queue, u.Unwrap()...)
		}
	}
}

func TestPollOverSSHChecksHostKey(t *testing.T) {
	root := t.TempDir()
	srv := gitserver.NewSSH(t, root)
	repo := gittest.NewRepo(t, gitserver.InitBare(t, filepath.Join(root, "fleet.git")))
	c1 := repo.Commit("one", map[string]string{"fleet.yaml": "v1\n"})
	repo.Push()
	dir := t.TempDir()
	keyFile, pub := gitserver.NewClientKey(t, dir)
	srv.Authorize(pub)
	knownHosts := srv.WriteKnownHosts(t, dir)

	r := newRemote(t, srv.URL("fleet.git"), gitsource.WithCacheDir(t.TempDir()), gitsource.WithSSHKeyFile(keyFile, knownHosts), fast())
	res := poll(t, r, "")
	if res.Commit != c1 || readFile(t, res, "fleet.yaml") != "v1\n" {
		t.Fatalf("poll over ssh = %+v", res)
	}
	c2 := repo.Commit("two", map[string]string{"fleet.yaml": "v2\n"})
	repo.Push()
	if res := poll(t, r, c1); res.Commit != c2 || !res.Fetched {
		t.Fatalf("poll over ssh after push = %+v", res)
	}
	before := srv.Sessions()
	if res := poll(t, r, c2); res.Fetched || res.Changed {
		t.Fatalf("no-change poll over ssh = %+v", res)
	}
	if n := srv.Sessions() - before; n != 1 {
		t.Fatalf("no-change poll over ssh ran %d sessions, want 1", n)
	}

	// A server presenting another host key is refused, and not retried.
	other := gitserver.NewSSH(t, root)
	wrongHosts := filepath.Join(t.TempDir(), "known_hosts")
	// knownhosts.Line writes the address as [host]:port.
	writeFile(t, wrongHosts, strings.Replace(other.KnownHostsLine(), addrPort(other.Addr()), addrPort(srv.Addr()), 1)+"\n")
	bad := newRemote(t, srv.URL("fleet.git"), gitsource.WithCacheDir(t.TempDir()), gitsource.WithSSHKeyFile(keyFile, wrongHosts), fast())
	_, err := bad.Poll(context.Background(), "")
	var trust *gitsource.ServerTrustError
	if !errors.As(err, &trust) || gitsource.ReasonOf(err) != "server-trust" {
		t.Fatalf("wrong host key: err = %v, want ServerTrustError", err)
	}
	// An unknown host (empty known_hosts) is refused too.
	empty := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, empty, "")
	unknown := newRemote(t, srv.URL("fleet.git"), gitsource.WithCacheDir(t.TempDir()), gitsource.WithSSHKeyFile(keyFile, empty), fast())
	if _, err := unknown.Poll(context.Background(), ""); !errors.As(err, &trust) {
		t.Fatalf("unknown host key: err = %v, want ServerTrustError", err)
	}
	// Only an explicit opt-out accepts any host key.
	insecure := newRemote(t, srv.URL("fleet.git"), gitsource.WithCacheDir(t.TempDir()), gitsource.WithSSHKeyFile(keyFile, ""), gitsource.WithInsecureIgnoreHostKey())
	if res := poll(t, insecure, ""); res.Commit != c2 {
		t.Fatalf("insecure poll = %+v", res)
	}
	// An unauthorized client key is an auth error.
	strangerKey, _ := gitserver.NewClientKey(t, t.TempDir())
	denied := newRemote(t, srv.URL("fleet.git"), gitsource.WithCacheDir(t.TempDir()), gitsource.WithSSHKeyFile(strangerKey, knownHosts), fast())
	var auth *gitsource.AuthError
	if _, err := denied.Poll(context.Background(), ""); !errors.As(err, &auth) {
		t.Fatalf("unauthorized key: err = %v, want AuthError", err)
	}
}

func addrPort(addr string) string {
	host, port, _ := strings.Cut(addr, ":")
	return "[" + host + "]:" + port
}

func TestPollFileURLWithSubPathAndTag(t *testing.T) {
	bare := gitserver.InitBare(t, filepath.Join(t.TempDir(), "fleet.git"))
	repo := gittest.NewRepo(t, bare)
	repo.Commit("one", map[string]string{"fleet/fleet.yaml": "v1\n", "fleet/link.yaml": "", "other/x": "x\n"})
	if err := os.Remove(filepath.Join(repo.Dir, "fleet/link.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../other/x", filepath.Join(repo.Dir, "fleet/link.yaml")); err != nil {
		t.Fatal(err)
	}
	c1 := repo.Commit("escaping link", nil)
	repo.Push()
	repo.Tag("prod", true)

	r := newRemote(t, "file://"+bare, gitsource.WithCacheDir(t.TempDir()), gitsource.WithRef("prod"), gitsource.WithSubPath("/fleet/"))
	res := poll(t, r, "")
	if res.Commit != c1 || res.Ref != "refs/tags/prod" {
		t.Fatalf("poll of annotated tag = %+v, want commit %s via refs/tags/prod", res, c1)
	}
	if got := readFile(t, res, "fleet.yaml"); got != "v1\n" {
		t.Fatalf("sub-path fleet.yaml = %q", got)
	}
	if _, err := fs.ReadFile(res.Revision.FS, "link.yaml"); !errors.Is(err, gitsource.ErrSymlinkEscapes) {
		t.Fatalf("link leaving the sub-path: err = %v, want ErrSymlinkEscapes", err)
	}

	// Moving the tag forward is a fast-forward; moving it back is not.
	c2 := repo.Commit("two", map[string]string{"fleet/fleet.yaml": "v2\n"})
	repo.Push()
	repo.Tag("prod", true)
	if res := poll(t, r, c1); res.Commit != c2 || readFile(t, res, "fleet.yaml") != "v2\n" {
		t.Fatalf("poll after moving the tag = %+v", res)
	}
	gittest.Git(t, repo.Dir, nil, "tag", "-f", "-a", "-m", "back", "prod", c1)
	gittest.Git(t, repo.Dir, nil, "push", "-q", "--force", "origin", "refs/tags/prod")
	var nff *gitsource.NotFastForwardError
	if _, err := r.Poll(context.Background(), c2); !errors.As(err, &nff) || nff.Ref != "refs/tags/prod" {
		t.Fatalf("tag moved back: err = %v, want NotFastForwardError on refs/tags/prod", err)
	}

	missing := newRemote(t, "file://"+bare, gitsource.WithCacheDir(t.TempDir()), gitsource.WithRef("main"), gitsource.WithSubPath("nope"))
	if _, err := missing.Poll(context.Background(), ""); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing sub-path: err = %v, want fs.ErrNotExist", err)
	}
}

func TestPollPinnedCommit(t *testing.T) {
	for _, allowSHA := range []bool{false, true} {
		t.Run(fmt.Sprintf("allowReachableSHA1InWant=%v", allowSHA), func(t *testing.T) {
			var opts []gitserver.Option
			if allowSHA {
				opts = append(opts, gitserver.WithGitConfig("uploadpack.allowReachableSHA1InWant", "true"))
			}
			f := newFleet(t, opts...)
			c1 := f.push(t, "one", map[string]string{"fleet.yaml": "v1\n"})
			f.push(t, "two", map[string]string{"fleet.yaml": "v2\n"})
			r := newRemote(t, f.url, gitsource.WithCacheDir(t.TempDir()), gitsource.WithAllowHTTP(), gitsource.WithRef(c1))
			res := poll(t, r, "")
			if res.Commit != c1 || res.Ref != c1 || readFile(t, res, "fleet.yaml") != "v1\n" {
				t.Fatalf("pinned poll = %+v", res)
			}
			f.srv.Reset()
			if res := poll(t, r, c1); res.Changed || res.Fetched {
				t.Fatalf("second pinned poll = %+v", res)
			}
			if n := f.srv.Count(); n != 0 {
				t.Fatalf("a pinned commit already in the cache cost %d requests, want 0", n)
			}
			// Pinning an older commit is the operator's explicit choice.
			f.push(t, "three", map[string]string{"fleet.yaml": "v3\n"})
			gone := newRemote(t, f.url, gitsource.WithCacheDir(t.TempDir()), gitsource.WithAllowHTTP(), gitsource.WithRef(strings.Repeat("0f", 20)), fast())
			var nf *gitsource.NotFoundError
			if _, err := gone.Poll(context.Background(), ""); !errors.As(err, &nf) {
				t.Fatalf("pinned commit that does not exist: err = %v, want NotFoundError", err)
			}
		})
	}
}

func TestRemotesSharingACacheDirPollConcurrently(t *testing.T) {
	f := newFleet(t)
	c1 := f.push(t, "one", map[string]string{"a": "1"})
	cacheDir := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		r := newRemote(t, f.url, gitsource.WithCacheDir(cacheDir), gitsource.WithAllowHTTP())
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := r.Poll(context.Background(), "")
			if err == nil && res.Commit != c1 {
				err = fmt.Errorf("commit %s, want %s", res.Commit, c1)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestPollHonorsContext(t *testing.T) {
	f := newFleet(t)
	f.push(t, "one", map[string]string{"a": "1"})
	r := newRemote(t, f.url, gitsource.WithCacheDir(t.TempDir()), gitsource.WithAllowHTTP())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := r.Poll(ctx, "")
	if !errors.Is(err, context.Canceled) || gitsource.ReasonOf(err) != "canceled" {
		t.Fatalf("poll with a canceled context: err = %v", err)
	}
}

func TestPollKeepsTheNumberOfPacksBounded(t *testing.T) {
	f := newFleet(t)
	last := f.push(t, "one", map[string]string{"fleet.yaml": "v0\n"})
	r := newRemote(t, f.url, gitsource.WithCacheDir(t.TempDir()), gitsource.WithAllowHTTP())
	gitsource.SetMaxPacks(r, 3)
	poll(t, r, "")
	for i := 1; i <= 8; i++ {
		c := f.push(t, fmt.Sprintf("change %d", i), map[string]string{"fleet.yaml": fmt.Sprintf("v%d\n", i), fmt.Sprintf("hosts/h%d.yaml", i): "x\n"})
		res := poll(t, r, last)
		if res.Commit != c || readFile(t, res, "fleet.yaml") != fmt.Sprintf("v%d\n", i) || readFile(t, res, "hosts/h1.yaml") != "x\n" {
			t.Fatalf("poll %d = %+v", i, res)
		}
		if packs := glob(t, r.CacheDir(), "objects/pack/*.pack"); len(packs) > 4 {
			t.Fatalf("after %d fetches the cache has %d packs, want at most 4", i, len(packs))
		}
		last = c
	}
}
