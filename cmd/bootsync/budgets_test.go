package main

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/bootsync/bootsync/hostspec"
)

// network.timeout and the limits ceilings come from the host's
// configuration; bad values are errors naming the key.
func TestNetworkTimeoutAndLimitCeilingsFromConfig(t *testing.T) {
	withConfigFiles(t, "", "host: {name: web-01}\nnetwork: {timeout: 3s}\nlimits: {templateSteps: 5000, fileSize: 2Mi}\n")
	cfg, err := loadWithFlags(t)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Network.Timeout != 3*time.Second {
		t.Errorf("network.timeout = %s", cfg.Network.Timeout)
	}
	c, err := cfg.Limits.ceilings()
	if err != nil {
		t.Fatal(err)
	}
	want := hostspec.DefaultCeilings
	want.TemplateSteps, want.FileSize = 5000, 2<<20
	if c != want {
		t.Errorf("ceilings = %+v, want %+v", c, want)
	}

	withConfigFiles(t, "", "host: {name: web-01}\n")
	if cfg, err = loadWithFlags(t); err != nil || cfg.Network.Timeout != 15*time.Second {
		t.Fatalf("default network.timeout = %v, %v", cfg, err)
	}
	if c, err := cfg.Limits.ceilings(); err != nil || c != hostspec.DefaultCeilings {
		t.Fatalf("default ceilings = %+v, %v", c, err)
	}

	for content, want := range map[string]string{
		"host: {name: a}\nnetwork: {timeout: 0s}\n":           "network.timeout must be positive",
		"host: {name: a}\nlimits: {templateSteps: many}\n":    "limits.templateSteps",
		"host: {name: a}\nlimits: {fileSize: 4Mb}\n":          "limits.fileSize",
		"host: {name: a}\nlimits: {steps: 4}\n":               "steps",
		"host: {name: a}\nnetwork: {timeout: 1s, idle: 2s}\n": "idle",
	} {
		withConfigFiles(t, "", content)
		if _, err := loadWithFlags(t); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config %q: err = %v, want %q", content, err, want)
		}
	}
}

// The fleet commands take the ceilings and the network timeout as flags.
func TestBudgetFlags(t *testing.T) {
	var rf repoFlags
	cmd := &cobra.Command{Use: "x"}
	rf.register(cmd)
	if err := cmd.ParseFlags([]string{"--limit", "templateSteps=123", "--limit", "repoSize=2Gi", "--network-timeout", "4s"}); err != nil {
		t.Fatal(err)
	}
	c, err := rf.budget.ceilings()
	if err != nil {
		t.Fatal(err)
	}
	if c.TemplateSteps != 123 || c.RepoSize != 2<<30 || c.FileSize != hostspec.DefaultCeilings.FileSize || rf.budget.netTimeout != 4*time.Second {
		t.Errorf("ceilings %+v, timeout %s", c, rf.budget.netTimeout)
	}
	for _, bad := range []string{"templateSteps", "nope=1", "fileSize=-3"} {
		rf.budget.limits = []string{bad}
		if _, err := rf.budget.ceilings(); err == nil {
			t.Errorf("--limit %q accepted", bad)
		}
	}
}
