package etcoverlay

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/bootsync/bootsync/hostspec"
)

// Account databases, in lookup order. bootc images (Fedora, CentOS and RHEL
// based) keep the image's system users in /usr/lib/passwd and /usr/lib/group
// through nss-altfiles; /etc/passwd holds the local and sysusers-made ones.
// They are read under the writer's root: owners are the target system's, not
// those of the machine running bootsync.
var (
	passwdFiles = []string{"etc/passwd", "usr/lib/passwd"}
	groupFiles  = []string{"etc/group", "usr/lib/group"}
)

// idResolver turns owner and group names into numeric ids, reading the
// account databases once and only when a name needs them.
type idResolver struct {
	tree   *dirTree
	users  map[string]int
	groups map[string]int
	err    error
	loaded bool
}

func (r *idResolver) uid(name string) (int, error) {
	return r.lookup(name, "owner", "user", passwdFiles, func() map[string]int { return r.users })
}

func (r *idResolver) gid(name string) (int, error) {
	return r.lookup(name, "group", "group", groupFiles, func() map[string]int { return r.groups })
}

func (r *idResolver) lookup(name, field, noun string, files []string, table func() map[string]int) (int, error) {
	// root is 0 on every Unix; it must resolve even on a root without an
	// account database (a fresh test root, a minimal image).
	if name == "" || name == "root" {
		return 0, nil
	}
	if id, err := strconv.ParseUint(name, 10, 32); err == nil {
		if msg := hostspec.AccountIDProblem(id); msg != "" {
			return 0, fmt.Errorf("%s %q: %s", field, name, msg)
		}
		return int(id), nil
	}
	if err := r.load(); err != nil {
		return 0, err
	}
	if id, ok := table()[name]; ok {
		return id, nil
	}
	return 0, fmt.Errorf("%s %q: no such %s in %s", field, name, noun, strings.Join(hostPaths(files), " or "))
}

func (r *idResolver) load() error {
	if r.loaded {
		return r.err
	}
	r.loaded = true
	r.users, r.err = r.readDB(passwdFiles)
	if r.err == nil {
		r.groups, r.err = r.readDB(groupFiles)
	}
	return r.err
}

// readDB reads name → id from colon-separated account files (the third field
// is the uid in passwd and the gid in group). The first file naming an
// account wins, as with nss "files altfiles". Missing files are skipped.
func (r *idResolver) readDB(files []string) (map[string]int, error) {
	ids := map[string]int{}
	for _, rel := range files {
		dir, name := path.Split(rel)
		dirfd, err := r.tree.dir(strings.TrimSuffix(dir, "/"), false)
		if err == errMissing {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", hostPath(rel), err)
		}
		o, err := observe(dirfd, name, -1, digester{})
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", hostPath(rel), err)
		}
		switch o.kind {
		case kindMissing:
			continue
		case kindRegular:
		default:
			return nil, fmt.Errorf("read %s: %w", hostPath(rel), &refusedError{path: hostPath(rel), what: "is " + o.kind.String()})
		}
		sc := bufio.NewScanner(bytes.NewReader(o.content))
		sc.Buffer(make([]byte, 0, 4096), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			// Blank lines, comments and NIS compat entries ("+", "-") name
			// no local account.
			if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
				continue
			}
			fields := strings.SplitN(line, ":", 4)
			if len(fields) < 3 {
				continue
			}
			id, err := strconv.ParseUint(fields[2], 10, 32)
			if err != nil {
				continue
			}
			if _, dup := ids[fields[0]]; !dup {
				ids[fields[0]] = int(id)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("read %s: %w", hostPath(rel), err)
		}
	}
	return ids, nil
}

func hostPaths(rels []string) []string {
	out := make([]string, len(rels))
	for i, r := range rels {
		out[i] = hostPath(r)
	}
	return out
}
