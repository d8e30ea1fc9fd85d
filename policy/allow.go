package policy

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// allowList is one layer of repository prefixes. An empty list allows
// everything at that layer.
type allowList struct {
	source   string   // "host" or "fleet", for messages
	prefixes []string // normalized "host[:port]" or "host[:port]/path"
}

// normalizePrefix validates an allow-list entry and writes it the way
// go-containerregistry names repositories (lower-case host, docker.io as
// index.docker.io), so that "docker.io/library" and the parsed image agree.
func normalizePrefix(p string) (string, error) {
	p = strings.TrimSuffix(strings.TrimSpace(p), "/")
	if p == "" {
		return "", fmt.Errorf("empty registry prefix")
	}
	if strings.ContainsAny(p, "@*") || strings.Contains(p, "://") {
		return "", fmt.Errorf("registry prefix %q: write host[:port][/path], without scheme, wildcard, tag or digest", p)
	}
	host, path, hasPath := strings.Cut(p, "/")
	if !hasPath {
		reg, err := name.NewRegistry(host, name.StrictValidation)
		if err != nil {
			return "", fmt.Errorf("registry prefix %q: %w", p, err)
		}
		return strings.ToLower(reg.Name()), nil
	}
	repo, err := name.NewRepository(host+"/"+path, name.StrictValidation)
	if err != nil {
		return "", fmt.Errorf("registry prefix %q: %w", p, err)
	}
	return strings.ToLower(repo.RegistryStr()) + "/" + repo.RepositoryStr(), nil
}

// repositoryKey is a repository written like a normalized prefix.
func repositoryKey(repo name.Repository) string {
	return strings.ToLower(repo.RegistryStr()) + "/" + repo.RepositoryStr()
}

// allows reports whether repo is under one of the prefixes: the same
// registry host and port, and a path equal to the prefix path or below it
// ("registry.example.com/os" allows ".../os/base" but not ".../osx").
func (l allowList) allows(repo name.Repository) bool {
	if len(l.prefixes) == 0 {
		return true
	}
	key := repositoryKey(repo)
	for _, p := range l.prefixes {
		if key == p || strings.HasPrefix(key, p+"/") {
			return true
		}
	}
	return false
}
