package hostspec

import (
	"crypto/sha256"
	"encoding/binary"
	"path"
	"strings"
)

// Selector says which hosts a Group applies to. Every part that is given
// must match: Hosts (any glob matches the host name, path.Match syntax),
// Labels (every label equal) and Bucket (Bucket(name) within the range).
type Selector struct {
	Hosts  []string          `json:"hosts,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	// Bucket is the range as written: "lo-hi" or "n", within 0..99.
	Bucket string `json:"bucket,omitempty"`

	bucketLo, bucketHi int
	hasBucket          bool
	hostPrefixes       []string    // globPrefix of each of Hosts
	labelPairs         [][2]string // Labels as a list, cheaper to walk than a map
}

// Matches reports whether the selector picks the host with this name and
// labels.
func (s *Selector) Matches(name string, labels map[string]string) bool {
	return s.matches(name, labels, Bucket(name))
}

func (s *Selector) matches(name string, labels map[string]string, bucket int) bool {
	if s.hasBucket && (bucket < s.bucketLo || bucket > s.bucketHi) {
		return false
	}
	for _, kv := range s.labelPairs {
		if got, ok := labels[kv[0]]; !ok || got != kv[1] {
			return false
		}
	}
	if len(s.Hosts) == 0 {
		return true
	}
	for i, g := range s.Hosts {
		// The literal prefix of a glob rejects most names without the cost
		// of path.Match (most globs look like "web-*").
		if i < len(s.hostPrefixes) && !strings.HasPrefix(name, s.hostPrefixes[i]) {
			continue
		}
		// Patterns were checked at Load, so Match cannot fail here.
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

// globPrefix returns the literal text before the first special character
// of a path.Match pattern.
func globPrefix(g string) string {
	if i := strings.IndexAny(g, `*?[\`); i >= 0 {
		return g[:i]
	}
	return g
}

// bucketSalt versions the bucket hash: changing it would move every host
// to a new bucket, so it must stay as it is.
const bucketSalt = "bootsync-bucket/v1\x00"

// Bucket places a host name in one of 100 stable buckets (0..99) for
// percentage rollouts (`selector: {bucket: "0-9"}` is about 10% of hosts).
//
// The bucket is the first 8 bytes of SHA-256("bootsync-bucket/v1\x00" +
// name), read as a big-endian uint64, modulo 100. It depends on nothing
// but the name, so every tool and every host computes the same bucket,
// and it never changes while the name does not.
func Bucket(name string) int {
	var buf [64]byte
	b := append(buf[:0], bucketSalt...)
	b = append(b, name...)
	sum := sha256.Sum256(b)
	return int(binary.BigEndian.Uint64(sum[:8]) % 100)
}

// GroupsFor returns the names of the groups that apply to a host with this
// name and labels, in the order they are applied.
func (r *Repo) GroupsFor(name string, labels map[string]string) []string {
	idx := r.matchGroups(name, labels, Bucket(name))
	out := make([]string, len(idx))
	for i, g := range idx {
		out[i] = r.groups[g].Name
	}
	return out
}

func (r *Repo) matchGroups(name string, labels map[string]string, bucket int) []int {
	var out []int
	for i, g := range r.groups {
		if g.Selector.matches(name, labels, bucket) {
			out = append(out, i)
		}
	}
	return out
}
