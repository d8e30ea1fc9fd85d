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

// hostWarnings are host problems worth reporting on every pass.
func (a *Agent) hostWarnings() []string {
	var w []string
	if fetchApplyTimerActive(a.cfg.Root) {
		w = append(w, "bootc-fetch-apply-updates.timer is enabled: it can undo rollbacks and apply staged updates outside the reboot policy; mask it (systemctl mask bootc-fetch-apply-updates.timer)")
	}
	return w
}

// fetchApplyTimerActive reports whether bootc's own auto-update timer is
// enabled and not masked.
func fetchApplyTimerActive(root string) bool {
	const unit = "bootc-fetch-apply-updates.timer"
	if target, err := os.Readlink(filepath.Join(root, "etc/systemd/system", unit)); err == nil && target == "/dev/null" {
		return false
	}
	for _, dir := range []string{"etc/systemd/system/timers.target.wants", "usr/lib/systemd/system/timers.target.wants"} {
		if _, err := os.Lstat(filepath.Join(root, dir, unit)); err == nil {
			return true
		}
	}
	return false
}
