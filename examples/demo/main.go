// Command demo runs bootsync on its embedded default: the example fleet in
// examples/fleet, committed to a throwaway Git repository, and a pull
// request against it, reviewed the way CI would review it.
package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

type demo struct {
	work     string // scratch directory
	bootsync string // built binary
	fleet    string // the fleet repository checkout
}

func run(ctx context.Context) error {
	src, err := sourceRoot()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "bootsync-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	d := &demo{work: work, bootsync: filepath.Join(work, "bin", "bootsync"), fleet: filepath.Join(work, "fleet")}

	d.say("Building bootsync")
	if err := d.cmd(ctx, src, "go", "build", "-o", d.bootsync, "./cmd/bootsync"); err != nil {
		return err
	}

	d.say("A fleet repository: examples/fleet committed to %s", d.fleet)
	if err := copyTree(filepath.Join(src, "examples", "fleet"), d.fleet); err != nil {
		return err
	}
	if err := d.git(ctx, "init", "-q", "-b", "main"); err != nil {
		return err
	}
	if err := d.commit(ctx, "Initial fleet"); err != nil {
		return err
	}
	if err := d.show(ctx, "validate", "--repo", d.fleet); err != nil {
		return err
	}
	if err := d.show(ctx, "hosts", "--repo", d.fleet); err != nil {
		return err
	}
	d.say("What does web-01 get, and why?")
	if err := d.show(ctx, "render", "web-01", "--repo", d.fleet, "--explain"); err != nil {
		return err
	}

	d.say("A pull request: the fleet moves to a new image, and Busan gets a third NTP server")
	if err := d.git(ctx, "checkout", "-q", "-b", "pr/next-image"); err != nil {
		return err
	}
	if err := d.edit("fleet.yaml", "image: registry.example.com/os/base:stable", "image: registry.example.com/os/base:2026.12"); err != nil {
		return err
	}
	if err := d.edit("groups/site-busan.yaml", "ntp2.busan.example.com]", "ntp2.busan.example.com, ntp3.busan.example.com]"); err != nil {
		return err
	}
	d.say("CI runs `bootsync diff` on the pull request before it is committed (head = the working tree)")
	if err := d.show(ctx, "diff", "--repo", d.fleet, "--base", "main"); err != nil {
		return err
	}
	d.say("...and posts it as a PR comment (-o markdown), first lines:")
	out, err := d.output(ctx, "diff", "--repo", d.fleet, "--base", "main", "-o", "markdown")
	if err != nil {
		return err
	}
	lines := strings.SplitAfter(out, "\n")
	fmt.Print(strings.Join(lines[:min(len(lines), 16)], ""))

	d.say("A broken commit is refused with every problem named, and nothing is rendered")
	if err := d.edit("hosts/web-02.yaml", "labels:", "lables:"); err != nil {
		return err
	}
	if err := d.show(ctx, "validate", "--repo", d.fleet); err == nil {
		return fmt.Errorf("validate accepted a broken repository")
	}
	d.say("Done.")
	return nil
}

func (d *demo) say(format string, args ...any) {
	fmt.Printf("\n\033[1m==> %s\033[0m\n", fmt.Sprintf(format, args...))
}

// show runs bootsync with its output on the terminal.
func (d *demo) show(ctx context.Context, args ...string) error {
	fmt.Printf("$ bootsync %s\n", strings.Join(args, " "))
	return d.cmd(ctx, "", d.bootsync, args...)
}

func (d *demo) output(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, d.bootsync, args...).Output()
	if err != nil {
		return "", fmt.Errorf("bootsync %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

func (d *demo) cmd(ctx context.Context, dir, name string, args ...string) error {
	c := exec.CommandContext(ctx, name, args...)
	c.Dir = dir
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	if err := c.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", filepath.Base(name), strings.Join(args, " "), err)
	}
	return nil
}

func (d *demo) git(ctx context.Context, args ...string) error {
	c := exec.CommandContext(ctx, "git", args...)
	c.Dir = d.fleet
	c.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Demo Operator", "GIT_AUTHOR_EMAIL=ops@example.com",
		"GIT_COMMITTER_NAME=Demo Operator", "GIT_COMMITTER_EMAIL=ops@example.com")
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("git %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (d *demo) commit(ctx context.Context, msg string) error {
	if err := d.git(ctx, "add", "-A"); err != nil {
		return err
	}
	return d.git(ctx, "commit", "-q", "-m", msg)
}

func (d *demo) edit(rel, old, new string) error {
	p := filepath.Join(d.fleet, rel)
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if !strings.Contains(string(b), old) {
		return fmt.Errorf("edit %s: %q not found", rel, old)
	}
	return os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644)
}

// sourceRoot finds the bootsync checkout this program was built from.
func sourceRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if ok {
		root := filepath.Join(filepath.Dir(file), "..", "..")
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			return filepath.Abs(root)
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(wd, "examples", "fleet")); err != nil {
		return "", fmt.Errorf("run the demo from the bootsync checkout (make demo)")
	}
	return wd, nil
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if e.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, info.Mode().Perm())
	})
}
