package ocisource_test

import (
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bootsync/bootsync/ocisource"
	"github.com/bootsync/bootsync/test/gitserver/gittest"
	"github.com/bootsync/bootsync/test/signer"
)

// retag points tag at the manifest ref names (repository@digest), as a
// registry user with push rights can.
func (f *fleet) retag(ref, tag string) {
	f.t.Helper()
	d, err := name.NewDigest(ref, name.Insecure)
	if err != nil {
		f.t.Fatal(err)
	}
	desc, err := remote.Get(d)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := remote.Put(d.Context().Tag(tag), desc); err != nil {
		f.t.Fatal(err)
	}
}

// A poll with nothing new is one HEAD; a new digest is verified (the
// signature tag and its payload) before its manifest and content are read.
func TestPollCostsOneHeadAndVerifiesBeforeReading(t *testing.T) {
	f := newFleet(t)
	c1 := f.commit(map[string]string{"fleet.yaml": "kind: Fleet\n", "hosts/web-01.yaml": "one\n"})
	pub := f.publish("main", nil, "")
	dir := t.TempDir()
	s := f.source(dir)
	_, hexDigest, _ := strings.Cut(pub.Reference, "@sha256:")

	f.reg.Reset()
	res := f.poll(s, "")
	if res.Commit != c1 || !res.Changed || !res.Fetched {
		t.Fatalf("first poll = %+v, want commit %s, changed and fetched", res, c1)
	}
	if b, err := fs.ReadFile(res.Revision.FS, "hosts/web-01.yaml"); err != nil || string(b) != "one\n" {
		t.Fatalf("hosts/web-01.yaml = %q, %v", b, err)
	}
	got := f.reg.Recorded()
	sigAt := slices.Index(got, "GET /v2/ops/fleet/manifests/sha256-"+hexDigest+".sig")
	manifestAt := slices.Index(got, "GET /v2/ops/fleet/manifests/sha256:"+hexDigest)
	if sigAt < 0 || manifestAt < 0 || sigAt > manifestAt {
		t.Fatalf("requests %q: want the signature read before the manifest", got)
	}
	for _, r := range got[:sigAt] {
		if strings.Contains(r, "/blobs/") {
			t.Fatalf("requests %q: a blob was read before the signature", got)
		}
	}

	f.reg.Reset()
	res = f.poll(s, c1)
	if res.Commit != c1 || res.Changed || res.Fetched {
		t.Fatalf("second poll = %+v", res)
	}
	if got := f.reg.Recorded(); !slices.Equal(got, []string{"HEAD /v2/ops/fleet/manifests/main"}) {
		t.Fatalf("a poll with nothing new made requests %q, want one HEAD", got)
	}

	// Another process (a new Source on the same state) needs no more once
	// connected: the digest's verdict and content are kept.
	again := f.source(dir)
	if err := again.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.reg.Reset()
	if res := f.poll(again, c1); res.Commit != c1 || res.Fetched {
		t.Fatalf("poll in a new process = %+v", res)
	}
	if got := f.reg.Recorded(); !slices.Equal(got, []string{"HEAD /v2/ops/fleet/manifests/main"}) {
		t.Fatalf("a new process's poll made requests %q, want one HEAD", got)
	}

	// Kept content that changed on disk is not trusted: it is fetched again.
	matches, _ := filepath.Glob(filepath.Join(dir, "content-*.tar"))
	if len(matches) != 1 {
		t.Fatalf("kept content files: %q", matches)
	}
	if err := os.WriteFile(matches[0], []byte("tampered"), 0o600); err != nil {
		t.Fatal(err)
	}
	res = f.poll(f.source(dir), c1)
	if b, err := fs.ReadFile(res.Revision.FS, "hosts/web-01.yaml"); !res.Fetched || err != nil || string(b) != "one\n" {
		t.Fatalf("after tampering: fetched %v, %q, %v", res.Fetched, b, err)
	}
}

// Anti-rollback: a re-pushed older artifact and the same generation with
// another commit are refused, without downloading their content; a revert
// is a new generation and accepted; --allow-reset accepts one commit.
func TestRollbackIsRefusedAndRevertIsAccepted(t *testing.T) {
	f := newFleet(t)
	c1 := f.commit(map[string]string{"fleet.yaml": "v1\n"})
	old := f.publish("main", nil, "")
	c2 := f.commit(map[string]string{"fleet.yaml": "v2\n"})
	f.publish("main", nil, "")
	dir := t.TempDir()
	s := f.source(dir)
	if res := f.poll(s, ""); res.Commit != c2 {
		t.Fatalf("poll = %s, want c2", res.Commit)
	}

	// The tag is moved back to the old, validly signed artifact.
	f.retag(old.Reference, "main")
	f.reg.Reset()
	_, err := s.Poll(context.Background(), c2)
	var rb *ocisource.RollbackError
	if !errors.As(err, &rb) || rb.Generation != 1 || rb.AppliedGen != 2 || reasonOf(err) != "oci-rollback" {
		t.Fatalf("re-pushed old artifact: %v (reason %s), want a rollback refusal 1 < 2", err, reasonOf(err))
	}
	if n := f.reg.Count("GET", "/v2/ops/fleet/blobs/"); n > 1 {
		t.Fatalf("refused artifact: %d blob reads, want at most the signature payload", n)
	}
	// Refused again on the next poll, for one HEAD.
	f.reg.Reset()
	if _, err := s.Poll(context.Background(), c2); !errors.As(err, &rb) || len(f.reg.Recorded()) != 1 {
		t.Fatalf("second poll of the refused artifact: %v, requests %q", err, f.reg.Recorded())
	}
	// The operator accepts it once.
	reset := f.source(dir, ocisource.WithAllowReset(c1))
	if res := f.poll(reset, c2); res.Commit != c1 || !res.Reset {
		t.Fatalf("allowed reset = %+v", res)
	}

	// A revert of c2 is generation 3: accepted, and it holds c1's files.
	c3 := f.git.Revert("HEAD")
	f.publish("main", nil, "")
	res := f.poll(s, c2)
	if res.Commit != c3 {
		t.Fatalf("after the revert: %s, want %s", res.Commit, c3)
	}
	if b, _ := fs.ReadFile(res.Revision.FS, "fleet.yaml"); string(b) != "v1\n" {
		t.Fatalf("reverted fleet.yaml = %q", b)
	}

	// A sibling of c2 (generation 2, another commit), published with
	// --allow-reset, is refused by a host on c2.
	gittest.Git(t, f.git.Dir, nil, "reset", "-q", "--hard", c1)
	sibling := f.commit(map[string]string{"fleet.yaml": "sibling\n"})
	if _, err := f.tryPublish("main", nil, ""); err == nil || !strings.Contains(err.Error(), "does not descend") {
		t.Fatalf("publishing a commit that does not descend from the published one: %v", err)
	}
	f.publish("main", nil, sibling)
	_, err = f.source(dir).Poll(context.Background(), c2)
	if !errors.As(err, &rb) || rb.Generation != 2 || rb.Commit != sibling {
		t.Fatalf("same generation, other commit: %v", err)
	}
}

// An artifact that is unsigned, signed by another key, or signed for
// another repository is refused before its manifest is read.
func TestUntrustedArtifactsAreRefusedUnread(t *testing.T) {
	f := newFleet(t)
	f.commit(map[string]string{"fleet.yaml": "v1\n"})
	good := f.publish("main", nil, "")
	other, _ := newKey(t)
	f.commit(map[string]string{"fleet.yaml": "v2\n"})
	wrong := f.publish("wrong", other, "")

	unsignedRef := strings.Replace(good.Reference, "/ops/fleet@", "/ops/unsigned@", 1)
	copyArtifact(t, good.Reference, unsignedRef)
	s := f.source(t.TempDir())
	for _, tc := range []struct{ ref, tag, reason string }{
		{wrong.Reference, "main", "oci-bad-signature"},
	} {
		f.retag(tc.ref, tc.tag)
		f.reg.Reset()
		_, err := s.Poll(context.Background(), "")
		if reasonOf(err) != ocisource.Reason(tc.reason) {
			t.Fatalf("%s: %v (reason %s), want %s", tc.reason, err, reasonOf(err), tc.reason)
		}
		if n := f.reg.Count("GET", "/v2/ops/fleet/manifests/sha256:"); n != 0 {
			t.Fatalf("%s: the manifest was read (%q)", tc.reason, f.reg.Recorded())
		}
	}

	// Unsigned, and a signature copied from another repository.
	src := func(url string) *ocisource.Source {
		s, err := ocisource.New(url, ocisource.WithCacheDir(t.TempDir()), ocisource.WithRegistry(f.client), ocisource.WithFleetKeys(f.pub))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	repo, digest, _ := strings.Cut(unsignedRef, "@")
	f.retag(unsignedRef, "main")
	if _, err := src("oci://"+repo+":main").Poll(context.Background(), ""); reasonOf(err) != "oci-no-signature" {
		t.Fatalf("unsigned: %v", err)
	}
	sigTag := "sha256-" + strings.TrimPrefix(digest, "sha256:") + ".sig"
	copyArtifact(t, strings.Split(good.Reference, "@")[0]+":"+sigTag, repo+":"+sigTag)
	if _, err := src("oci://"+repo+":main").Poll(context.Background(), ""); reasonOf(err) != "oci-wrong-identity" {
		t.Fatalf("signature replayed from another repository: %v", err)
	}
}

func copyArtifact(t *testing.T, from, to string) {
	t.Helper()
	s, err := name.ParseReference(from, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	d, err := name.ParseReference(to, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(d, img); err != nil {
		t.Fatal(err)
	}
}

// Something else than a fleet artifact (an OS image), validly signed, is
// refused as invalid; content over the host's ceiling is refused by the
// size the signed manifest gives, before it is downloaded.
func TestInvalidAndOversizedArtifactsAreRefused(t *testing.T) {
	f := newFleet(t)
	digest, _ := f.reg.PushRandom("ops/fleet", "main")
	sg, err := signer.New()
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(t.TempDir(), "other.pub")
	if err := sg.WritePublicKey(pub); err != nil {
		t.Fatal(err)
	}
	if err := sg.Sign(context.Background(), f.reg.Host+"/ops/fleet@"+digest); err != nil {
		t.Fatal(err)
	}
	s, err := ocisource.New(f.url, ocisource.WithCacheDir(t.TempDir()), ocisource.WithRegistry(f.client), ocisource.WithFleetKeys(pub))
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Poll(context.Background(), "")
	if reasonOf(err) != "oci-invalid-artifact" || !strings.Contains(err.Error(), "not a fleet artifact") {
		t.Fatalf("an OS image as fleet source: %v (reason %s)", err, reasonOf(err))
	}

	// 256 KiB of random letters: about 160 KiB once compressed.
	rng := rand.New(rand.NewPCG(1, 2))
	var big strings.Builder
	for big.Len() < 256<<10 {
		big.WriteByte(byte('a' + rng.IntN(26)))
	}
	c := f.commit(map[string]string{"fleet.yaml": "v1\n", "files/big": big.String()})
	if _, err := f.tryPublish("main", nil, ""); err == nil || !strings.Contains(err.Error(), "not a fleet artifact") {
		t.Fatalf("publishing over an OS image: %v, want a refusal", err)
	}
	f.publish("main", nil, c)
	small := f.source(t.TempDir(), ocisource.WithSizeLimit(64<<10))
	f.reg.Reset()
	_, err = small.Poll(context.Background(), "")
	var tl *ocisource.ContentTooLargeError
	if !errors.As(err, &tl) || !tl.Compressed || reasonOf(err) != "oci-too-large" {
		t.Fatalf("oversized content: %v", err)
	}
	if n := f.reg.Count("GET", "/v2/ops/fleet/blobs/"); n != 1 { // the signature payload only
		t.Fatalf("oversized content: %d blob reads (%q), want only the signature's", n, f.reg.Recorded())
	}
	// Compressed under the limit, unpacked over it: refused while unpacking.
	unpacked := f.source(t.TempDir(), ocisource.WithSizeLimit(220<<10))
	if _, err = unpacked.Poll(context.Background(), ""); !errors.As(err, &tl) || tl.Compressed {
		t.Fatalf("content over the limit once unpacked: %v", err)
	}
}

// With trust.commitKeys, a host takes only artifacts whose commit
// signature publish verified.
func TestUnverifiedCommitIsRefusedWhereRequired(t *testing.T) {
	f := newFleet(t)
	f.commit(map[string]string{"fleet.yaml": "v1\n"})
	f.publish("main", nil, "")
	s := f.source(t.TempDir(), ocisource.WithRequireVerifiedCommits())
	if _, err := s.Poll(context.Background(), ""); reasonOf(err) != "oci-unverified-commit" {
		t.Fatalf("unverified commit: %v", err)
	}
}

// The last applied commit's generation must be on record: a host that
// lost its state (or came from Git) needs the operator's --allow-reset.
func TestUnknownGenerationNeedsAReset(t *testing.T) {
	f := newFleet(t)
	c1 := f.commit(map[string]string{"fleet.yaml": "v1\n"})
	c2 := f.commit(map[string]string{"fleet.yaml": "v2\n"})
	f.publish("main", nil, "")
	_, err := f.source(t.TempDir()).Poll(context.Background(), c1)
	if reasonOf(err) != "oci-unknown-generation" || !strings.Contains(err.Error(), "--allow-reset "+c2) {
		t.Fatalf("unknown generation: %v", err)
	}
	// The same commit as applied needs no generation.
	if res := f.poll(f.source(t.TempDir()), c2); res.Changed {
		t.Fatalf("same commit: %+v", res)
	}
}

// A registry answering 429/503 sees no request from the source until its
// backoff is over: at least one poll interval (more after each failure,
// with jitter), or the Retry-After it asked for when longer.
func TestOverloadedRegistryIsGivenTime(t *testing.T) {
	f := newFleet(t)
	c1 := f.commit(map[string]string{"fleet.yaml": "v1\n"})
	f.publish("main", nil, "")
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	const interval = time.Minute
	s := f.source(t.TempDir(), ocisource.WithClock(clk.Now), ocisource.WithPollInterval(interval))
	f.poll(s, "")

	f.reg.SetFault(unavailable(503, ""))
	var untils []time.Time
	for range 4 {
		f.reg.Reset()
		_, err := s.Poll(context.Background(), c1)
		if reasonOf(err) != "oci-unavailable" || len(f.reg.Recorded()) != 1 {
			t.Fatalf("poll against a 503: %v (reason %s), requests %q: want one request", err, reasonOf(err), f.reg.Recorded())
		}
		// Until the backoff ends: no request at all.
		_, err = s.Poll(context.Background(), c1)
		var bo *ocisource.BackoffError
		if !errors.As(err, &bo) || reasonOf(err) != "oci-backoff" || len(f.reg.Recorded()) != 1 {
			t.Fatalf("poll during the backoff: %v, requests %q", err, f.reg.Recorded())
		}
		untils = append(untils, bo.Until)
		clk.now = bo.Until.Add(-time.Second)
		if _, err := s.Poll(context.Background(), c1); !errors.As(err, &bo) {
			t.Fatalf("a second before the backoff ends: %v", err)
		}
		clk.now = bo.Until
	}
	// Each wait is in [2^(n-1), 2^n) intervals after the failed poll.
	start := time.Unix(1_800_000_000, 0)
	for n, until := range untils {
		wait := until.Sub(start)
		lo := interval << n
		if wait < lo || wait >= 2*lo {
			t.Errorf("backoff %d lasted %s, want [%s, %s)", n+1, wait, lo, 2*lo)
		}
		start = until
	}

	// 429 with a Retry-After longer than the backoff: honoured.
	f.reg.SetFault(unavailable(429, "7200"))
	clk.now = clk.now.Add(time.Hour) // a healthy poll first resets the count...
	f.reg.SetFault(nil)
	f.poll(s, c1)
	f.reg.SetFault(unavailable(429, "7200"))
	_, err := s.Poll(context.Background(), c1)
	if reasonOf(err) != "oci-rate-limited" {
		t.Fatalf("429: %v", err)
	}
	_, err = s.Poll(context.Background(), c1)
	var bo *ocisource.BackoffError
	if !errors.As(err, &bo) || bo.Until.Sub(clk.now) != time.Hour {
		t.Fatalf("after a 429 asking for 2h: %v, want a backoff of the 1h cap", err)
	}
	// Once the registry answers again, polls are back to one per interval.
	f.reg.SetFault(nil)
	clk.now = bo.Until
	f.poll(s, c1)
	clk.now = clk.now.Add(time.Second)
	if res := f.poll(s, c1); res.Commit != c1 {
		t.Fatalf("after recovery: %+v", res)
	}
}
