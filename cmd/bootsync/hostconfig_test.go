package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// withConfigFiles points the image and host config files at temporary
// files with the given content ("" leaves a file absent).
func withConfigFiles(t *testing.T, image, host string) {
	t.Helper()
	dir := t.TempDir()
	oldImage, oldHost := imageConfigFile, hostConfigFile
	t.Cleanup(func() { imageConfigFile, hostConfigFile = oldImage, oldHost })
	imageConfigFile, hostConfigFile = filepath.Join(dir, "usr-lib.yaml"), filepath.Join(dir, "etc.yaml")
	for path, content := range map[string]string{imageConfigFile: image, hostConfigFile: host} {
		if content == "" {
			continue
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func loadWithFlags(t *testing.T, args ...string) (*Config, error) {
	t.Helper()
	var hf hostFlags
	cmd := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { return nil }}
	hf.register(cmd)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	return hf.load(cmd)
}

// The image's defaults < the host's file < BOOTSYNC_* < flags.
func TestConfigPrecedence(t *testing.T) {
	withConfigFiles(t,
		"repo: {url: https://git.example.com/fleet.git, ref: stable}\ninterval: 10m\nstateDir: /var/lib/image\nhost: {name: from-image}\n",
		"repo: {ref: main}\nstateDir: /var/lib/host\nhost: {name: from-etc, labels: {site: seoul}}\n")
	t.Setenv("BOOTSYNC_STATEDIR", "/var/lib/env")
	t.Setenv("BOOTSYNC_INTERVAL", "90s")
	t.Setenv("BOOTSYNC_HOST_LABELS", "site=busan,ring=0")
	cfg, err := loadWithFlags(t, "--state-dir", "/var/lib/flag")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Repo.URL != "https://git.example.com/fleet.git" || cfg.Repo.Ref != "main" {
		t.Errorf("repo = %+v: want the image's URL and the host's ref", cfg.Repo)
	}
	if cfg.Host.Name != "from-etc" {
		t.Errorf("host.name = %q, want the host file's", cfg.Host.Name)
	}
	if cfg.Interval != 90*time.Second {
		t.Errorf("interval = %s, want the environment's 90s", cfg.Interval)
	}
	if cfg.StateDir != "/var/lib/flag" {
		t.Errorf("stateDir = %q, want the flag's", cfg.StateDir)
	}
	if cfg.Host.Labels["site"] != "busan" || cfg.Host.Labels["ring"] != "0" {
		t.Errorf("labels = %v, want the environment's", cfg.Host.Labels)
	}
	if cfg.Jitter != 30*time.Second || cfg.Bootc.Path != "bootc" || !cfg.Trust.AcceptBundles {
		t.Errorf("defaults lost: jitter %s, bootc %q, acceptBundles %v", cfg.Jitter, cfg.Bootc.Path, cfg.Trust.AcceptBundles)
	}
}

// A mistake in a config file names the file, the line and the key.
func TestConfigUnknownKeyNamesFileAndLine(t *testing.T) {
	withConfigFiles(t, "", "repo:\n  url: https://x/y.git\n  reff: main\n")
	_, err := loadWithFlags(t)
	if err == nil {
		t.Fatal("an unknown key was accepted")
	}
	for _, want := range []string{hostConfigFile, "line 3", "reff"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	withConfigFiles(t, "", "interval: often\n")
	if _, err := loadWithFlags(t); err == nil || !strings.Contains(err.Error(), "line 1") || !strings.Contains(err.Error(), "often") {
		t.Errorf("a bad duration: %v", err)
	}
	withConfigFiles(t, "", "")
	t.Setenv("BOOTSYNC_INTERVAL", "-5s")
	if _, err := loadWithFlags(t); err == nil || !strings.Contains(err.Error(), "interval must be positive") {
		t.Errorf("a negative interval: %v", err)
	}
}

// --config names the host file; it must then exist.
func TestConfigFlagMustExist(t *testing.T) {
	withConfigFiles(t, "", "")
	if _, err := loadWithFlags(t, "--config", filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("a missing --config file was accepted")
	}
}

// The sample configurations in examples/config load as they are: they
// cannot drift from the keys the agent accepts.
func TestExampleConfigsLoad(t *testing.T) {
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", "examples", "config", p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	withConfigFiles(t, read("usr/lib/bootsync/config.yaml"), read("etc/bootsync/config.yaml"))
	if _, err := loadWithFlags(t); err != nil {
		t.Fatalf("image default + host config: %v", err)
	}
	withConfigFiles(t, "", read("config.yaml"))
	if _, err := loadWithFlags(t); err != nil {
		t.Fatalf("examples/config/config.yaml: %v", err)
	}
}
