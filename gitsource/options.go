package gitsource

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5/plumbing"
	gossh "golang.org/x/crypto/ssh"

	"github.com/bootsync/bootsync/internal/netdeadline"
)

// Option configures a Remote. Options validate their arguments; New returns
// the first error.
type Option func(*options) error

type options struct {
	cacheDir              string
	ref                   string
	subPath               string
	allowHTTP             bool
	usernameFile          string
	passwordFile          string
	tokenFile             string
	sshKeyFile            string
	knownHostsFile        string
	insecureIgnoreHostKey bool
	caFile                string
	pgpKeys               openpgp.EntityList
	sshKeys               []gossh.PublicKey
	allowReset            string
	attempts              int
	baseDelay             time.Duration
	maxDelay              time.Duration
	netTimeout            time.Duration
}

func defaultOptions() options {
	return options{ref: "HEAD", subPath: ".", attempts: 4, baseDelay: time.Second, maxDelay: 30 * time.Second, netTimeout: netdeadline.Default}
}

var hexCommit = regexp.MustCompile(`^[0-9a-f]{40}$`)

// isCommitID reports whether s is a full, lower-case SHA-1 commit id.
func isCommitID(s string) bool { return hexCommit.MatchString(s) }

// WithCacheDir sets the directory that holds the local bare caches (under
// the agent's state dir). Required. Each remote URL gets its own
// subdirectory, so several remotes can share one cache dir.
func WithCacheDir(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return errors.New("cache dir is empty")
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("cache dir %s: %w", dir, err)
		}
		o.cacheDir = abs
		return nil
	}
}

// WithRef selects what to follow: a branch name ("main"), a tag name or full
// ref ("refs/tags/v1", "refs/heads/main"), or a pinned 40-hex commit id.
// A short name is looked up as a branch first, then as a tag. The default is
// the server's HEAD (its default branch).
//
// A pinned commit is an explicit operator choice in host-local config: Poll
// checks its signature but not fast-forward, and makes no request at all once
// the commit is in the cache.
func WithRef(ref string) Option {
	return func(o *options) error {
		ref = strings.TrimSpace(ref)
		switch {
		case ref == "":
			return errors.New("ref is empty")
		case len(ref) == 40 && isCommitID(strings.ToLower(ref)):
			ref = strings.ToLower(ref)
		case ref == "HEAD":
		case strings.HasPrefix(ref, "refs/"):
			if err := plumbing.ReferenceName(ref).Validate(); err != nil {
				return fmt.Errorf("ref %q: %w", ref, err)
			}
		default:
			if err := plumbing.NewBranchReferenceName(ref).Validate(); err != nil {
				return fmt.Errorf("ref %q: %w", ref, err)
			}
		}
		o.ref = ref
		return nil
	}
}

// WithSubPath makes revisions expose the directory p of the repository (the
// fleet repo lives in a sub-directory of the Git repository). Symbolic links
// that leave p are refused like links that leave the repository.
func WithSubPath(p string) Option {
	return func(o *options) error {
		for _, elem := range strings.Split(p, "/") {
			if elem == ".." {
				return fmt.Errorf("sub-path %q leaves the repository", p)
			}
		}
		clean := path.Clean("/" + strings.Trim(p, "/"))[1:]
		if clean == "" {
			clean = "."
		}
		if !fs.ValidPath(clean) {
			return fmt.Errorf("sub-path %q is not a relative path inside the repository", p)
		}
		o.subPath = clean
		return nil
	}
}

// WithAllowHTTP permits plain http:// URLs, which are refused otherwise:
// neither the server nor the content can be trusted over plain HTTP unless
// commits are signed.
func WithAllowHTTP() Option {
	return func(o *options) error { o.allowHTTP = true; return nil }
}

// WithBasicAuthFiles authenticates to an http(s) server with the user name
// and password (or access token) read from these files at every poll, so
// rotated credentials are picked up. usernameFile may be empty: the user
// name is then "git" (servers that take a token as password ignore it).
func WithBasicAuthFiles(usernameFile, passwordFile string) Option {
	return func(o *options) error {
		if passwordFile == "" {
			return errors.New("basic auth needs a password file")
		}
		o.usernameFile, o.passwordFile = usernameFile, passwordFile
		return nil
	}
}

// WithBearerTokenFile authenticates to an http(s) server with
// "Authorization: Bearer <token>", the token read from file at every poll.
func WithBearerTokenFile(file string) Option {
	return func(o *options) error {
		if file == "" {
			return errors.New("bearer token file is empty")
		}
		o.tokenFile = file
		return nil
	}
}

// WithSSHKeyFile authenticates to an ssh:// or scp-style server with the
// passphrase-less private key in keyFile, and checks the server's host key
// against knownHostsFile. knownHostsFile may be empty only together with
// WithInsecureIgnoreHostKey.
func WithSSHKeyFile(keyFile, knownHostsFile string) Option {
	return func(o *options) error {
		if keyFile == "" {
			return errors.New("SSH key file is empty")
		}
		o.sshKeyFile, o.knownHostsFile = keyFile, knownHostsFile
		return nil
	}
}

// WithInsecureIgnoreHostKey accepts any SSH host key. Only for tests and
// bootstrapping: anyone between the host and the server can serve it a
// repository.
func WithInsecureIgnoreHostKey() Option {
	return func(o *options) error { o.insecureIgnoreHostKey = true; return nil }
}

// WithCABundle trusts the PEM certificates in file, in addition to the
// system roots, for an https:// server. The file is read at every poll.
func WithCABundle(file string) Option {
	return func(o *options) error {
		if file == "" {
			return errors.New("CA bundle file is empty")
		}
		o.caFile = file
		return nil
	}
}

// WithCommitKeys requires the commit Poll returns to be signed by one of
// these keys. Each key is the content of a host-local key file: an
// ASCII-armored OpenPGP public key block (any number of keys), or SSH public
// keys one per line in authorized_keys or git's allowed_signers format (for
// commits signed with gpg.format=ssh). Without this option commits need no
// signature.
func WithCommitKeys(keys ...string) Option {
	return func(o *options) error {
		if len(keys) == 0 {
			return errors.New("no commit keys given")
		}
		for i, k := range keys {
			if strings.Contains(k, "-----BEGIN PGP PUBLIC KEY BLOCK-----") {
				el, err := openpgp.ReadArmoredKeyRing(strings.NewReader(k))
				if err != nil {
					return fmt.Errorf("commit key %d: read OpenPGP key block: %w", i+1, err)
				}
				if len(el) == 0 {
					return fmt.Errorf("commit key %d: the OpenPGP key block holds no key", i+1)
				}
				o.pgpKeys = append(o.pgpKeys, el...)
				continue
			}
			ssh, err := parseSSHPublicKeys(k)
			if err != nil {
				return fmt.Errorf("commit key %d: %w", i+1, err)
			}
			o.sshKeys = append(o.sshKeys, ssh...)
		}
		return nil
	}
}

// parseSSHPublicKeys reads SSH public keys, one per line, from authorized_keys
// ("[options] type base64 [comment]") or allowed_signers
// ("principals [options] type base64 [comment]") content.
func parseSSHPublicKeys(content string) ([]gossh.PublicKey, error) {
	var keys []gossh.PublicKey
	for n, line := range strings.Split(content, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		start := -1
		for i, f := range fields {
			if strings.HasPrefix(f, "ssh-") || strings.HasPrefix(f, "ecdsa-sha2-") ||
				strings.HasPrefix(f, "sk-ssh-") || strings.HasPrefix(f, "sk-ecdsa-sha2-") {
				start = i
				break
			}
		}
		if start < 0 || start+1 >= len(fields) {
			return nil, fmt.Errorf("line %d is neither an OpenPGP public key block nor an SSH public key", n+1)
		}
		key, _, _, _, err := gossh.ParseAuthorizedKey([]byte(strings.Join(fields[start:], " ")))
		if err != nil {
			return nil, fmt.Errorf("line %d: parse SSH public key: %w", n+1, err)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("no OpenPGP public key block or SSH public key found")
	}
	return keys, nil
}

// WithAllowReset lets Poll accept exactly this commit even though it does not
// descend from the last applied commit: the operator's explicit, one-off
// consent to a reset of the fleet repository's history. It is set in
// host-local configuration, never by the repository; signature checks still
// apply. Once the commit is applied, later moves must descend from it again,
// so the option can be removed at leisure.
func WithAllowReset(commit string) Option {
	return func(o *options) error {
		c := strings.ToLower(strings.TrimSpace(commit))
		if !isCommitID(c) {
			return fmt.Errorf("allowed reset %q is not a full 40-hex commit id", commit)
		}
		o.allowReset = c
		return nil
	}
}

// WithRetry makes each poll try the network up to attempts times on transient
// failures (connection refused or reset, timeouts, HTTP 5xx and 429), waiting
// a random time up to baseDelay·2ⁿ (capped at 32·baseDelay) between tries:
// exponential backoff with full jitter, so a fleet does not retry in
// lock-step. Permanent failures (authentication, missing repository or ref,
// untrusted server) are never retried. The default is 4 attempts from 1s.
func WithRetry(attempts int, baseDelay time.Duration) Option {
	return func(o *options) error {
		if attempts < 1 {
			return fmt.Errorf("retry attempts must be at least 1, not %d", attempts)
		}
		if baseDelay < 0 {
			return fmt.Errorf("retry base delay must not be negative, not %s", baseDelay)
		}
		o.attempts, o.baseDelay, o.maxDelay = attempts, baseDelay, 32*baseDelay
		return nil
	}
}
