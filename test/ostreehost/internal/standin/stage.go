package standin

import (
	"errors"
	"fmt"
	"os"

	"github.com/bootsync/bootsync/apply/bootc"
)

// stage queues img for the next boot (`ostree admin deploy --stage`:
// libostree keeps it in /run and finalizes it, /etc merge included, at
// shutdown), then prunes images no deployment uses, like bootc.
func (inv *invocation) stage(c *current, img *Imported, ref bootc.ImageReference, lockFinalization bool) error {
	origin, err := writeOrigin("/run", ref)
	if err != nil {
		return err
	}
	defer os.Remove(origin)
	if _, err := inv.sysroot.admin(inv.ctx, "deploy", "--stage", "--os="+c.booted.Stateroot, "--origin-file="+origin, img.Checksum); err != nil {
		return fmt.Errorf("Staging: %w", err)
	}
	// The lock belongs to the staged deployment: one left by an earlier
	// download-only staging must not hold this one back.
	if err := setFinalizationLock(lockFinalization); err != nil {
		return err
	}
	if err := inv.pruneImages(c, img.Checksum); err != nil {
		return fmt.Errorf("Staging: cleanup: %w", err)
	}
	fmt.Fprintf(inv.stdout, "Queued for next boot: %s\n", imgrefDisplay(ref))
	if img.Version != nil {
		fmt.Fprintf(inv.stdout, "  Version: %s\n", *img.Version)
	}
	fmt.Fprintf(inv.stdout, "  Digest: %s\n", img.Digest)
	return writeRebootRequired(img.Digest)
}

// pruneImages deletes the refs of images that no deployment (nor the one
// just staged) uses, then prunes the repository, as bootc's cleanup does.
func (inv *invocation) pruneImages(c *current, staged string) error {
	used := map[string]bool{staged: true}
	for _, d := range c.state.Deployments {
		if !d.Staged {
			used[d.Checksum] = true
		}
	}
	pruned := false
	for _, im := range c.state.Images {
		if used[im.Checksum] {
			continue
		}
		if _, err := inv.sysroot.ostree(inv.ctx, "refs", "--repo="+inv.sysroot.Repo(), "--delete", im.Ref); err != nil {
			return err
		}
		pruned = true
	}
	if !pruned {
		return nil
	}
	_, err := inv.sysroot.ostree(inv.ctx, "prune", "--repo="+inv.sysroot.Repo(), "--refs-only")
	return err
}

// writeOrigin writes an origin file naming ref, as bootc's
// origin_from_imageref does, in dir.
func writeOrigin(dir string, ref bootc.ImageReference) (string, error) {
	f, err := os.CreateTemp(dir, "bootc-origin-")
	if err != nil {
		return "", fmt.Errorf("writing origin: %w", err)
	}
	_, err = fmt.Fprintf(f, "[origin]\ncontainer-image-reference=%s\n", originString(ref))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("writing origin: %w", err)
	}
	return f.Name(), nil
}

// setFinalizationLock creates or removes the file that makes ostree
// 2022.7's finalize-staged skip the staged deployment ("Not finalizing");
// bootc's --download-only sets the same lock through libostree.
func setFinalizationLock(locked bool) error {
	if !locked {
		if err := os.Remove(lockedPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("unlocking finalization: %w", err)
		}
		return nil
	}
	if err := os.WriteFile(lockedPath, nil, 0o644); err != nil {
		return fmt.Errorf("locking finalization: %w", err)
	}
	return nil
}

// writeRebootRequired writes the kured-style marker bootc ≥ 1.9 writes.
func writeRebootRequired(digest string) error {
	if err := os.WriteFile(rebootRequired, []byte("bootc: Reboot required for image: "+digest), 0o644); err != nil {
		return fmt.Errorf("Creating /run/reboot-required: %w", err)
	}
	return nil
}
