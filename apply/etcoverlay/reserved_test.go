package etcoverlay

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/bootsync/bootsync/hostspec"
)

// The reserved paths: the agent's configuration directory, the files the
// configuration names, and the image-trust files; a directory reserves
// what is below it, and writing a file over a reserved directory's parent
// is refused as well. The host's etc.allowReserved lets a path through.
func TestReservedPaths(t *testing.T) {
	r, err := NewReserved([]string{"/etc/pki/fleet/commit.asc", "/var/lib/bootsync", ""}, []string{"/etc/containers/registries.conf.d"})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"/etc/bootsync/config.yaml":                 "/etc/bootsync",
		"/etc/bootsync":                             "/etc/bootsync",
		"/etc/containers/policy.json":               "/etc/containers/policy.json",
		"/etc/containers/registries.d/default.yaml": "/etc/containers/registries.d",
		"/etc/containers/registries.conf":           "/etc/containers/registries.conf",
		"/etc/ostree/auth.json":                     "/etc/ostree/auth.json",
		"/etc/pki/containers/fleet.pub":             "/etc/pki/containers",
		"/etc/pki/fleet/commit.asc":                 "/etc/pki/fleet/commit.asc",
		"/etc/containers":                           "/etc/containers/policy.json", // a file in place of the directory
		"/etc/containers/registries.conf.d/x.conf":  "",                            // allowed by the host
		"/etc/containers/storage.conf":              "",
		"/etc/bootsync-other/x":                     "",
		"/etc/pki/fleet/other.asc":                  "",
		"/etc/motd":                                 "",
	} {
		rp, reserved := r.Check(p)
		if got := rp.Path; reserved != (want != "") || got != want {
			t.Errorf("Check(%s) = %q, %v; want reserved by %q", p, got, reserved, want)
		}
	}
	if _, err := NewReserved(nil, []string{"/etc/../root"}); err == nil {
		t.Error("an allowed path with .. was accepted")
	}
	if got := HostPath("/srv/root", "/srv/root/etc/bootsync/key.pub"); got != "/etc/bootsync/key.pub" {
		t.Errorf("HostPath = %q", got)
	}
}

// CheckFiles refuses a spec that writes or removes a reserved path, naming
// each entry with its file and line; validate's Problems names the same
// entries at their place in the repository.
func TestReservedPathErrorsNameTheEntries(t *testing.T) {
	r, err := NewReserved(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	fleet := "apiVersion: bootsync.dev/v1alpha1\nkind: Fleet\nspec:\n  image: registry.example.com/os/base:1\n  etc:\n" +
		"    - {path: /etc/bootsync/config.yaml, content: \"trust: {requireSignatures: false}\\n\"}\n" +
		"    - {path: /etc/containers/policy.json, absent: true}\n" +
		"    - {path: /etc/motd, content: hi}\n"
	repo, err := hostspec.Load(context.Background(), fstest.MapFS{"fleet.yaml": {Data: []byte(fleet)}})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := repo.Resolve(context.Background(), "web-01", nil)
	if err != nil {
		t.Fatal(err)
	}
	err = r.CheckFiles(spec.Etc)
	var rpe *ReservedPathError
	if !errors.As(err, &rpe) || len(rpe.Entries) != 2 {
		t.Fatalf("CheckFiles = %v, want a ReservedPathError for 2 entries", err)
	}
	for _, want := range []string{"/etc/bootsync/config.yaml (fleet.yaml:6)", "/etc/containers/policy.json (fleet.yaml:7)", "etc.allowReserved", "nothing was changed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	problems := r.Problems(repo.EtcTargets())
	if len(problems) != 2 || problems[0].Line != 6 || problems[1].Line != 7 || problems[0].Field != "etc[/etc/bootsync/config.yaml]" {
		t.Fatalf("Problems = %v, want the two entries at fleet.yaml:6 and :7", problems)
	}
}

// The writer refuses owner 4294967295 with the very message validate
// gives (hostspec.AccountIDProblem): one rule for CI and hosts.
func TestReservedAccountIDMatchesValidate(t *testing.T) {
	f := newFixture(t)
	p := f.plan(t, []hostspec.EtcFile{etcFile("/etc/o.conf", "x\n", owner("4294967295", "root"))})
	want := hostspec.AccountIDProblem(1<<32 - 1)
	if len(p.Problems) != 1 || !strings.Contains(p.Problems[0].Error(), want) {
		t.Fatalf("problems = %v, want one saying %q", p.Err(), want)
	}
}
