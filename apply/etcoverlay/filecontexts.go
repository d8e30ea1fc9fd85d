package etcoverlay

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// FileContexts is the LabelSource of a host: the loaded SELinux policy's
// file_contexts, read the way libselinux's selabel_lookup reads them for a
// regular file (libselinux itself is C, so bootsync does the lookup):
//
//   - the policy is SELINUXTYPE from <root>/etc/selinux/config; its
//     contexts/files/file_contexts, then file_contexts.local (local
//     customizations, `semanage fcontext`), are read in that order;
//   - a path is first rewritten by file_contexts.subs (local), then
//     file_contexts.subs_dist, the equivalence rules (Fedora maps
//     /etc/systemd/system to /usr/lib/systemd/system);
//   - every entry's regular expression must match the whole path, and its
//     file type must be absent or "--" (regular file);
//   - entries without regular-expression characters win over those with,
//     otherwise the last matching entry wins (so .local overrides);
//   - <<none>> means "do not label": Label returns "".
//
// The regular expressions are compiled with Go's regexp (RE2), which
// accepts the PCRE subset file_contexts uses; an entry it cannot compile
// is an error naming the file and line. The compiled file_contexts.bin and
// file_contexts.homedirs (home directories, never under /etc) are not read.
type FileContexts struct {
	specs          []fcSpec // exact entries last, each group in file order
	subs, distSubs [][2]string
}

type fcSpec struct {
	stem    string // literal prefix every matching path starts with
	re      *regexp.Regexp
	context string // "" for <<none>>
}

// LoadFileContexts reads the policy that <root>/etc/selinux/config names.
func LoadFileContexts(root string) (*FileContexts, error) {
	policy, err := selinuxType(filepath.Join(root, "etc/selinux/config"))
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, "etc/selinux", policy, "contexts/files")
	fc := &FileContexts{}
	var regexSpecs, exactSpecs []fcSpec
	for _, name := range []string{"file_contexts", "file_contexts.local"} {
		specs, err := readSpecs(filepath.Join(dir, name), name == "file_contexts")
		if err != nil {
			return nil, err
		}
		for _, s := range specs {
			if s.re == nil {
				exactSpecs = append(exactSpecs, s)
			} else {
				regexSpecs = append(regexSpecs, s)
			}
		}
	}
	fc.specs = append(regexSpecs, exactSpecs...)
	if fc.subs, err = readSubs(filepath.Join(dir, "file_contexts.subs")); err != nil {
		return nil, err
	}
	if fc.distSubs, err = readSubs(filepath.Join(dir, "file_contexts.subs_dist")); err != nil {
		return nil, err
	}
	return fc, nil
}

// Label implements LabelSource.
func (fc *FileContexts) Label(path string) (string, error) {
	if p, ok := substitute(fc.subs, path); ok {
		path = p
	}
	if p, ok := substitute(fc.distSubs, path); ok {
		path = p
	}
	for i := len(fc.specs) - 1; i >= 0; i-- {
		s := &fc.specs[i]
		if !strings.HasPrefix(path, s.stem) {
			continue
		}
		if s.re == nil && path == s.stem || s.re != nil && s.re.MatchString(path) {
			return s.context, nil
		}
	}
	return "", fmt.Errorf("no SELinux file context for %s in the policy's file_contexts", path)
}

func selinuxType(config string) (string, error) {
	data, err := os.ReadFile(config)
	if err != nil {
		return "", fmt.Errorf("read SELinux config: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "SELINUXTYPE="); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("%s sets no SELINUXTYPE", config)
}

// readSpecs parses one file_contexts file; a missing optional file has none.
func readSpecs(path string, required bool) ([]fcSpec, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !required {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read SELinux file contexts: %w", err)
	}
	var specs []fcSpec
	for n, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if len(fields) < 2 || len(fields) > 3 {
			return nil, fmt.Errorf("%s:%d: want \"regex [type] context\", got %q", path, n+1, line)
		}
		re, ctx := fields[0], fields[len(fields)-1]
		if len(fields) == 3 && fields[1] != "--" {
			continue // not a regular file's entry
		}
		if ctx == "<<none>>" {
			ctx = ""
		}
		s := fcSpec{stem: stem(re), context: ctx}
		if s.stem != re {
			if s.re, err = regexp.Compile(`^(?:` + re + `)$`); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, n+1, err)
			}
		}
		specs = append(specs, s)
	}
	return specs, nil
}

// stem is the literal prefix of a file_contexts regular expression: up to
// the first special character, less the character a quantifier applies to.
func stem(re string) string {
	i := strings.IndexAny(re, `.^$?*+|[({\`)
	if i < 0 {
		return re
	}
	if strings.ContainsRune("?*+{", rune(re[i])) && i > 0 {
		i--
	}
	return re[:i]
}

func readSubs(path string) ([][2]string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read SELinux path equivalences: %w", err)
	}
	var out [][2]string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && !strings.HasPrefix(f[0], "#") {
			out = append(out, [2]string{strings.TrimSuffix(f[0], "/"), strings.TrimSuffix(f[1], "/")})
		}
	}
	return out, nil
}

// substitute applies the first equivalence whose source is path or one of
// its parent directories.
func substitute(subs [][2]string, path string) (string, bool) {
	for _, s := range subs {
		if path == s[0] || strings.HasPrefix(path, s[0]+"/") {
			return s[1] + path[len(s[0]):], true
		}
	}
	return "", false
}
