package gitsource_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/test/gitserver/gittest"
)

func TestNewValidatesOptionsPerTransport(t *testing.T) {
	cache := gitsource.WithCacheDir(t.TempDir())
	pgp := gittest.NewGPGKey(t, "Key", "key@example.com")
	cases := []struct {
		name    string
		url     string
		opts    []gitsource.Option
		wantErr string // "" = valid
	}{
		{"https", "https://git.example.com/ops/fleet.git", nil, ""},
		{"https with basic auth", "https://git.example.com/fleet.git", []gitsource.Option{gitsource.WithBasicAuthFiles("/u", "/p"), gitsource.WithCABundle("/ca.pem")}, ""},
		{"https with bearer token", "https://git.example.com/fleet.git", []gitsource.Option{gitsource.WithBearerTokenFile("/t")}, ""},
		{"no cache dir", "https://git.example.com/fleet.git", []gitsource.Option{}, "cache dir is required"},
		{"plain http refused", "http://git.example.com/fleet.git", nil, "plain http:// is refused"},
		{"plain http allowed", "http://git.example.com/fleet.git", []gitsource.Option{gitsource.WithAllowHTTP()}, ""},
		{"CA bundle with http", "http://git.example.com/fleet.git", []gitsource.Option{gitsource.WithAllowHTTP(), gitsource.WithCABundle("/ca.pem")}, "CA bundle"},
		{"ssh key with https", "https://git.example.com/fleet.git", []gitsource.Option{gitsource.WithSSHKeyFile("/k", "/kh")}, "SSH key"},
		{"basic and token", "https://git.example.com/fleet.git", []gitsource.Option{gitsource.WithBasicAuthFiles("", "/p"), gitsource.WithBearerTokenFile("/t")}, "use one"},
		{"password in URL and files", "https://u:p@git.example.com/fleet.git", []gitsource.Option{gitsource.WithBasicAuthFiles("", "/p")}, "both in the URL and in files"},
		{"ssh", "ssh://git@git.example.com:2222/ops/fleet.git", []gitsource.Option{gitsource.WithSSHKeyFile("/k", "/kh")}, ""},
		{"scp-style", "git@git.example.com:ops/fleet.git", []gitsource.Option{gitsource.WithSSHKeyFile("/k", "/kh")}, ""},
		{"ssh without key", "ssh://git@git.example.com/fleet.git", nil, "needs an SSH key file"},
		{"ssh without known_hosts", "ssh://git@git.example.com/fleet.git", []gitsource.Option{gitsource.WithSSHKeyFile("/k", "")}, "known_hosts"},
		{"ssh insecure explicitly", "ssh://git@git.example.com/fleet.git", []gitsource.Option{gitsource.WithSSHKeyFile("/k", ""), gitsource.WithInsecureIgnoreHostKey()}, ""},
		{"ssh with basic auth", "ssh://git@git.example.com/fleet.git", []gitsource.Option{gitsource.WithSSHKeyFile("/k", "/kh"), gitsource.WithBasicAuthFiles("", "/p")}, "HTTP credentials"},
		{"insecure host key with https", "https://git.example.com/fleet.git", []gitsource.Option{gitsource.WithInsecureIgnoreHostKey()}, "SSH key or host key"},
		{"file", "file:///srv/git/fleet.git", nil, ""},
		{"file with credentials", "file:///srv/git/fleet.git", []gitsource.Option{gitsource.WithBearerTokenFile("/t")}, "file://"},
		{"git protocol", "git://git.example.com/fleet.git", nil, "not supported"},
		{"plain path", "/srv/git/fleet.git", nil, "not a Git URL"},
		{"empty ref", "https://h/f.git", []gitsource.Option{gitsource.WithRef("")}, "ref is empty"},
		{"bad ref", "https://h/f.git", []gitsource.Option{gitsource.WithRef("main..x")}, "ref"},
		{"tag ref", "https://h/f.git", []gitsource.Option{gitsource.WithRef("refs/tags/v1")}, ""},
		{"pinned commit", "https://h/f.git", []gitsource.Option{gitsource.WithRef(strings.Repeat("AB", 20))}, ""},
		{"sub-path escaping", "https://h/f.git", []gitsource.Option{gitsource.WithSubPath("../etc")}, "sub-path"},
		{"short reset", "https://h/f.git", []gitsource.Option{gitsource.WithAllowReset("abc123")}, "not a full 40-hex commit id"},
		{"zero retries", "https://h/f.git", []gitsource.Option{gitsource.WithRetry(0, 0)}, "at least 1"},
		{"openpgp key", "https://h/f.git", []gitsource.Option{gitsource.WithCommitKeys(pgp.Public)}, ""},
		{"ssh key lines", "https://h/f.git", []gitsource.Option{gitsource.WithCommitKeys("# signers\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGWvN9q3fTSuRmv8mXZ6h8bX1vE8mEJxeYyO0y5Yc0hK ops\n")}, ""},
		{"garbage commit key", "https://h/f.git", []gitsource.Option{gitsource.WithCommitKeys("not a key")}, "commit key 1"},
		{"broken pgp block", "https://h/f.git", []gitsource.Option{gitsource.WithCommitKeys("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n")}, "commit key 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			if tc.name != "no cache dir" {
				opts = append([]gitsource.Option{cache}, opts...)
			}
			r, err := gitsource.New(tc.url, opts...)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("New(%s) = %v, want success", tc.url, err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("New(%s) succeeded (%v), want an error containing %q", tc.url, r, tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("New(%s) = %q, want an error containing %q", tc.url, err, tc.wantErr)
			}
		})
	}
}

func TestCacheDirIsPerURLWithoutCredentials(t *testing.T) {
	dir := t.TempDir()
	mk := func(url string, opts ...gitsource.Option) string {
		r, err := gitsource.New(url, append(opts, gitsource.WithCacheDir(dir))...)
		if err != nil {
			t.Fatal(err)
		}
		return r.CacheDir()
	}
	a := mk("https://git.example.com/ops/fleet.git")
	if b := mk("https://deploy:secret@git.example.com/ops/fleet.git"); b != a {
		t.Fatalf("credentials change the cache dir: %s vs %s", a, b)
	}
	if b := mk("https://git.example.com/ops/other.git"); b == a {
		t.Fatalf("two repositories share the cache dir %s", a)
	}
	if !strings.HasPrefix(a, dir+"/") || len(a) != len(dir)+1+16 {
		t.Fatalf("cache dir %s is not <cacheDir>/<16 hex digits>", a)
	}
}

func TestRedact(t *testing.T) {
	cases := map[string]string{
		"clone https://deploy:hunter2@git.example.com/ops/fleet.git failed":   "clone https://***@git.example.com/ops/fleet.git failed",
		"https://ghp_abcdefghijklmnopqrstuvwxyz0123456789@github.com/o/r.git": "https://***@github.com/o/r.git",
		`Get "https://h/x?access_token=s3cr3t&x=1": EOF`:                      `Get "https://h/x?access_token=***&x=1": EOF`,
		"Authorization: Bearer abc.def.ghi":                                   "Authorization: Bearer ***",
		"token glpat-abcdefghijklmnopqrstu leaked":                            "token *** leaked",
		"ssh://git@git.example.com/fleet.git":                                 "ssh://git@git.example.com/fleet.git",
		"ssh://git:pw@git.example.com/fleet.git":                              "ssh://***@git.example.com/fleet.git",
		"git@github.com:ops/fleet.git":                                        "git@github.com:ops/fleet.git",
		"nothing secret here":                                                 "nothing secret here",
	}
	for in, want := range cases {
		if got := gitsource.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReasonOf(t *testing.T) {
	cases := []struct {
		err  error
		want gitsource.Reason
	}{
		{nil, ""},
		{fmt.Errorf("poll: %w", &gitsource.NotFastForwardError{From: "a", To: "b"}), "not-fast-forward"},
		{&gitsource.UnsignedCommitError{Commit: "c"}, "unsigned-commit"},
		{&gitsource.UntrustedSignatureError{Commit: "c", Format: "openpgp", Err: errors.New("bad")}, "untrusted-signature"},
		{&gitsource.AuthError{URL: "u", Err: errors.New("401")}, "auth"},
		{&gitsource.ServerTrustError{URL: "u", Err: errors.New("x509")}, "server-trust"},
		{&gitsource.NotFoundError{URL: "u", Err: errors.New("404")}, "not-found"},
		{&gitsource.TransientError{URL: "u", Attempts: 3, Err: errors.New("refused")}, "unreachable"},
		{&gitsource.CorruptCacheError{Dir: "d", Err: errors.New("bad pack")}, "corrupt-cache"},
		{errors.New("something else"), "error"},
	}
	for _, tc := range cases {
		if got := gitsource.ReasonOf(tc.err); got != tc.want {
			t.Errorf("ReasonOf(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
