package ostreehost

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// blsDefault is the deployment the bootloader boots: the BLS entry with
// the highest version (ostree writes index 0 as the highest), resolved
// through its ostree= argument as ostree-prepare-root does.
func (h *Host) blsDefault() (string, error) {
	entries, err := filepath.Glob(filepath.Join(h.Sysroot, "boot/loader/entries/*.conf"))
	if err != nil || len(entries) == 0 {
		return "", fmt.Errorf("no BLS entries under %s/boot/loader/entries (%v)", h.Sysroot, err)
	}
	best, bestVersion := "", -1
	for _, e := range entries {
		version, arg, err := readBLS(e)
		if err != nil {
			return "", err
		}
		if version > bestVersion {
			best, bestVersion = arg, version
		}
	}
	dep, err := filepath.EvalSymlinks(filepath.Join(h.Sysroot, best))
	if err != nil {
		return "", fmt.Errorf("BLS default ostree=%s: %w", best, err)
	}
	return dep, nil
}

// readBLS returns an entry's version and its ostree= kernel argument.
func readBLS(path string) (int, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	version, arg := -1, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, _ := strings.Cut(sc.Text(), " ")
		switch key {
		case "version":
			if version, err = strconv.Atoi(strings.TrimSpace(val)); err != nil {
				return 0, "", fmt.Errorf("%s: version %q: %w", path, val, err)
			}
		case "options":
			for _, o := range strings.Fields(val) {
				if v, ok := strings.CutPrefix(o, "ostree="); ok {
					arg = v
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, "", err
	}
	if version < 0 || arg == "" {
		return 0, "", fmt.Errorf("%s: BLS entry without version or ostree= argument", path)
	}
	return version, arg, nil
}

// Etc reads /etc/<rel> of the booted deployment, and whether it exists.
func (h *Host) Etc(rel string) (string, bool) {
	h.T.Helper()
	return h.readFile(filepath.Join(h.deployed, "etc", rel))
}

// WriteEtc edits /etc/<rel> of the booted deployment, as an administrator
// would.
func (h *Host) WriteEtc(rel, content string) {
	h.T.Helper()
	writeFile(h.T, filepath.Join(h.deployed, "etc", rel), content)
}

// VarPath is /var/<rel> of the host (the stateroot's /var, shared by all
// deployments) on the test machine.
func (h *Host) VarPath(rel string) string {
	return filepath.Join(h.Sysroot, "ostree/deploy", Stateroot, "var", rel)
}

// Var reads /var/<rel>.
func (h *Host) Var(rel string) (string, bool) {
	h.T.Helper()
	return h.readFile(h.VarPath(rel))
}

// WriteVar writes /var/<rel>.
func (h *Host) WriteVar(rel, content string) {
	h.T.Helper()
	writeFile(h.T, h.VarPath(rel), content)
}

func (h *Host) readFile(p string) (string, bool) {
	h.T.Helper()
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false
	}
	if err != nil {
		h.T.Fatal(err)
	}
	return string(b), true
}

// Commits lists the commit objects in the sysroot's repository.
func (h *Host) Commits() []string {
	h.T.Helper()
	files, err := filepath.Glob(filepath.Join(h.Sysroot, "ostree/repo/objects/*/*.commit"))
	if err != nil {
		h.T.Fatal(err)
	}
	var out []string
	for _, f := range files {
		out = append(out, filepath.Base(filepath.Dir(f))+strings.TrimSuffix(filepath.Base(f), ".commit"))
	}
	slices.Sort(out)
	return out
}

// Deployments lists the deployment directories on disk.
func (h *Host) Deployments() []string {
	h.T.Helper()
	deps, err := filepath.Glob(filepath.Join(h.Sysroot, "ostree/deploy", Stateroot, "deploy/*.[0-9]*"))
	if err != nil {
		h.T.Fatal(err)
	}
	var out []string
	for _, d := range deps {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			out = append(out, d)
		}
	}
	return out
}
