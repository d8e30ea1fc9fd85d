package main

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
)

// The agent's repo.url is never shown with its password, also when it
// does not parse (before, `bootsync agent` printed it in its error).
func TestAgentRepoURLIsRedacted(t *testing.T) {
	withConfigFiles(t, "", "host: {name: web-01}\nrepo: {url: \"https://user:secret@[::1\"}\nstateDir: "+t.TempDir()+"\nmetrics: {address: \"\"}\n")
	cfg, err := loadWithFlags(t)
	if err != nil {
		t.Fatal(err)
	}
	_, err = buildAgent(cfg, slog.New(slog.DiscardHandler), nil, "")
	if err == nil || strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "https://***@[::1") {
		t.Fatalf("buildAgent = %v, want an error with the URL redacted", err)
	}
}

// etc.allowReserved takes normalized paths under /etc; the files the
// configuration consists of and names are reserved as host paths (under
// root).
func TestReservedPathsFromTheConfiguration(t *testing.T) {
	withConfigFiles(t, "", "etc: {allowReserved: [/etc/../root]}\n")
	if _, err := loadWithFlags(t); err == nil || !strings.Contains(err.Error(), "etc.allowReserved") {
		t.Fatalf("load = %v, want an etc.allowReserved error", err)
	}
	withConfigFiles(t, "", "root: /srv/host\ntrust: {signingKeys: [/srv/host/etc/pki/fleet/key.pub]}\nrepo: {auth: {passwordFile: /srv/host/etc/git/token}}\netc: {allowReserved: [/etc/containers/registries.conf.d]}\n")
	cfg, err := loadWithFlags(t)
	if err != nil {
		t.Fatal(err)
	}
	named := cfg.namedFiles()
	for _, want := range []string{hostConfigFile, "/etc/pki/fleet/key.pub", "/etc/git/token"} {
		if !slices.Contains(named, want) {
			t.Errorf("named files %q lack %s", named, want)
		}
	}
	if !slices.Equal(cfg.Etc.AllowReserved, []string{"/etc/containers/registries.conf.d"}) {
		t.Errorf("allowReserved = %q", cfg.Etc.AllowReserved)
	}
}
