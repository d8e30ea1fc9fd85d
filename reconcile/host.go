package reconcile

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
)

// countUserSessions counts interactive login sessions from logind's
// session files (/run/systemd/sessions/*): class "user" on a terminal or a
// graphical seat, local or over SSH.
func countUserSessions(root string) int {
	dir := filepath.Join(root, "run/systemd/sessions")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		if e.IsDir() || strings.HasSuffix(e.Name(), ".ref") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		fields := map[string]string{}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), "="); ok {
				fields[k] = v
			}
		}
		if fields["CLASS"] != "user" || fields["STATE"] == "closing" {
			continue
		}
		switch fields["TYPE"] {
		case "tty", "x11", "wayland", "mir":
			n++
		}
	}
	return n
}
