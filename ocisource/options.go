package ocisource

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/internal/boundedread"
	"github.com/bootsync/bootsync/registry"
)

// Option configures a Source. Options validate their arguments; New
// returns the first error.
type Option func(*options) error

type options struct {
	cacheDir        string
	reg             *registry.Client
	keyFiles        []string
	allowReset      string
	requireVerified bool
	limit           int64
	interval        time.Duration
	now             func() time.Time
}

// WithCacheDir is where the source keeps its state and the current
// artifact's content (required; the agent uses <stateDir>/oci).
func WithCacheDir(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return errors.New("empty cache dir")
		}
		o.cacheDir = dir
		return nil
	}
}

// WithRegistry is the registry client (required). It should follow the
// host's registries.conf and credentials as for images, and make no
// retries of its own (registry.NoRetry): the source backs off between
// polls instead.
func WithRegistry(c *registry.Client) Option {
	return func(o *options) error {
		if c == nil {
			return errors.New("nil registry client")
		}
		o.reg = c
		return nil
	}
}

// WithFleetKeys trusts the PEM public keys in these host-local files
// (trust.fleetKeys) to sign fleet artifacts; any one may sign. Required: a
// fleet artifact is never read unsigned.
func WithFleetKeys(files ...string) Option {
	return func(o *options) error {
		for _, f := range files {
			if f == "" {
				return errors.New("empty fleet key path")
			}
		}
		o.keyFiles = append(o.keyFiles, files...)
		return nil
	}
}

// WithAllowReset accepts the artifact of exactly this commit although its
// generation does not exceed the last applied commit's: the operator's
// one-off consent, as for a force-push with Git.
func WithAllowReset(commit string) Option {
	return func(o *options) error {
		c := strings.ToLower(strings.TrimSpace(commit))
		if !commitID.MatchString(c) {
			return fmt.Errorf("allowed reset %q is not a full 40-hex commit id", commit)
		}
		o.allowReset = c
		return nil
	}
}

// WithRequireVerifiedCommits refuses artifacts whose commit signature
// publish did not verify (the host sets trust.commitKeys).
func WithRequireVerifiedCommits() Option {
	return func(o *options) error { o.requireVerified = true; return nil }
}

// WithSizeLimit bounds the content, compressed and unpacked (the host's
// limits.repoSize ceiling; default hostspec.DefaultCeilings.RepoSize).
func WithSizeLimit(n int64) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("size limit %d is not positive", n)
		}
		o.limit = n
		return nil
	}
}

// WithPollInterval is the agent's interval between polls, the unit of the
// backoff after an overloaded registry (default 5 minutes).
func WithPollInterval(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("poll interval %s is not positive", d)
		}
		o.interval = d
		return nil
	}
}

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return errors.New("nil clock")
		}
		o.now = now
		return nil
	}
}

func defaultOptions() options {
	return options{limit: hostspec.DefaultCeilings.RepoSize, interval: 5 * time.Minute, now: time.Now}
}

// trustID names the set of trusted keys, so a verdict recorded under other
// keys is not reused after keys change.
func trustID(files []string) (string, error) {
	var sums []string
	for _, f := range files {
		b, err := boundedread.ReadFile(f, boundedread.MaxLocalFile)
		if err != nil {
			return "", fmt.Errorf("read fleet key %s: %w", f, err)
		}
		s := sha256.Sum256(b)
		sums = append(sums, hex.EncodeToString(s[:]))
	}
	slices.Sort(sums)
	s := sha256.Sum256([]byte(strings.Join(sums, "\n")))
	return hex.EncodeToString(s[:16]), nil
}
