package sim

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// reboot moves the simulated host through a reboot, as ostree and bootc
// would:
//   - a staged deployment is finalized (it is first in ostree's order,
//     ahead of a queued rollback): /etc gets ostree's 3-way merge (see
//     mergeEtc), the staged deployment is booted and the old booted one
//     becomes the rollback (the previous rollback is dropped);
//   - else a queued rollback boots the rollback deployment with the /etc
//     it had when it was last booted (no merge), and the old booted
//     deployment becomes the rollback;
//   - a download-only (locked) staged deployment is not finalized: it is
//     discarded (and a queued rollback still boots);
//   - otherwise the same deployment boots again.
//
// /run is a tmpfs: the reboot-required marker goes away. A prepared soft
// reboot is consumed.
func (inv *invocation) reboot(s *State) error {
	if s.Booted == nil {
		return errors.New("bootcsim: cannot reboot a host without a booted deployment")
	}
	etcDir := filepath.Join(inv.cfg.Root, "etc")
	live, err := readEtc(etcDir)
	if err != nil {
		return err
	}
	outcome := "unchanged"
	switch {
	case s.Staged != nil && !s.Staged.DownloadOnly:
		prev, next := s.Booted, s.Staged
		prev.EtcSnapshot = live
		if err := replaceEtc(etcDir, mergeEtc(prev.ImageEtc, next.ImageEtc, live)); err != nil {
			return err
		}
		s.Booted, s.Rollback = next, prev
		outcome = "staged"
	case s.RollbackQueued && s.Rollback != nil:
		prev, next := s.Booted, s.Rollback
		prev.EtcSnapshot = live
		if err := replaceEtc(etcDir, next.EtcSnapshot); err != nil {
			return err
		}
		next.EtcSnapshot = nil // the live /etc is the truth while booted
		s.Booted, s.Rollback = next, prev
		outcome = "rollback"
	case s.Staged != nil:
		outcome = "discarded-download-only"
	}
	if !s.SoftRebootPrepared {
		// A soft reboot keeps the kernel, and with it the boot ID.
		if err := inv.writeBootID(); err != nil {
			return err
		}
	}
	s.Boots = append(s.Boots, Boot{Time: time.Now().UTC(), Outcome: outcome, Digest: s.Booted.Digest, Soft: s.SoftRebootPrepared})
	s.Staged = nil
	s.RollbackQueued = false
	s.SoftRebootPrepared = false
	if err := inv.save(s); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(inv.cfg.Root, "run", "reboot-required")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("clearing /run/reboot-required: %w", err)
	}
	return nil
}

// mergeEtc is ostree's /etc 3-way merge at file granularity: start from
// the live /etc; every path the old or new image ships that is not
// locally modified (its live state equals the old image's default,
// including "absent in both") takes the new image's version, or is
// removed when the new image no longer ships it. Locally modified,
// added or deleted files win wholesale.
func mergeEtc(oldDefaults, newDefaults, live map[string]EtcFile) map[string]EtcFile {
	out := make(map[string]EtcFile, len(live))
	for p, f := range live {
		out[p] = f
	}
	paths := map[string]bool{}
	for p := range oldDefaults {
		paths[p] = true
	}
	for p := range newDefaults {
		paths[p] = true
	}
	for p := range paths {
		o, inOld := oldDefaults[p]
		l, inLive := live[p]
		if inOld != inLive || (inOld && !o.equal(l)) {
			continue // locally modified
		}
		if n, inNew := newDefaults[p]; inNew {
			out[p] = n
		} else {
			delete(out, p)
		}
	}
	return out
}

// readEtc snapshots regular files and symlinks under dir, keyed by path
// relative to dir with forward slashes. Other file types and empty
// directories are not modelled.
func readEtc(dir string) (map[string]EtcFile, error) {
	files := map[string]EtcFile{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == dir {
				return fs.SkipDir
			}
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !d.Type().IsRegular() && d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		f := EtcFile{Mode: info.Mode().Perm()}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			f.UID, f.GID = int(st.Uid), int(st.Gid)
		}
		if d.Type().IsRegular() {
			f.Data, err = os.ReadFile(p)
		} else {
			f.Mode = 0o777
			f.Link, err = os.Readlink(p)
		}
		files[rel] = f
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading /etc of the simulated host: %w", err)
	}
	return files, nil
}

// replaceEtc makes dir hold exactly files.
func replaceEtc(dir string, files map[string]EtcFile) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("replacing /etc of the simulated host: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("replacing /etc of the simulated host: %w", err)
	}
	for rel, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("writing /etc/%s: %w", rel, err)
		}
		if f.Link != "" {
			if err := os.Symlink(f.Link, p); err != nil {
				return fmt.Errorf("writing /etc/%s: %w", rel, err)
			}
		} else if err := os.WriteFile(p, f.Data, f.Mode); err != nil {
			return fmt.Errorf("writing /etc/%s: %w", rel, err)
		}
		if err := chownIfNeeded(p, f.UID, f.GID); err != nil {
			return fmt.Errorf("writing /etc/%s: %w", rel, err)
		}
		if f.Link != "" {
			continue
		}
		// WriteFile's mode is filtered by the umask.
		if err := os.Chmod(p, f.Mode); err != nil {
			return fmt.Errorf("writing /etc/%s: %w", rel, err)
		}
	}
	return nil
}

// chownIfNeeded gives p its recorded owner (a no-op for files of the
// user running the simulator, who may not chown).
func chownIfNeeded(p string, uid, gid int) error {
	if uid == os.Getuid() && gid == os.Getgid() {
		return nil
	}
	return os.Lchown(p, uid, gid)
}

// bootIDPath is where the kernel publishes the boot ID, under the root.
const bootIDPath = "proc/sys/kernel/random/boot_id"

// writeBootID gives the simulated host a new kernel boot ID, as every
// (hard) boot does; agents use it to tell that a reboot happened.
func (inv *invocation) writeBootID() error {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("bootcsim: new boot ID: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	id := fmt.Sprintf("%x-%x-%x-%x-%x\n", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	p := filepath.Join(inv.cfg.Root, bootIDPath)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("bootcsim: writing the boot ID: %w", err)
	}
	if err := os.WriteFile(p, []byte(id), 0o644); err != nil {
		return fmt.Errorf("bootcsim: writing the boot ID: %w", err)
	}
	return nil
}
