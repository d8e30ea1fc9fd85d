package main

import (
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the scripts run this test binary as the real `bootsync`
// command: main() and its exit status included.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"bootsync": main})
}

// TestScripts runs the end-to-end CLI scenarios in testdata/script: each
// builds a small fleet repository with the real git CLI and runs bootsync
// on it as a user or CI would. Run one with -run TestScripts/diff; add
// -testwork to keep its $WORK directory. BOOTSYNC_UPDATE_SCRIPTS=1 rewrites
// the expected files that scripts compare with `cmp` (not `cmpenv`) from
// the actual output: review that diff line by line before keeping it.
func TestScripts(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("the CLI scripts need the git CLI: %v", err)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		UpdateScripts:       os.Getenv("BOOTSYNC_UPDATE_SCRIPTS") == "1",
		Setup: func(env *testscript.Env) error {
			// A hermetic git: no system or global configuration, a fixed
			// identity and fixed dates, no prompts.
			for k, v := range map[string]string{
				"GIT_CONFIG_NOSYSTEM": "1",
				"GIT_CONFIG_GLOBAL":   os.DevNull,
				"GIT_AUTHOR_NAME":     "Fleet Tester",
				"GIT_AUTHOR_EMAIL":    "tester@example.com",
				"GIT_COMMITTER_NAME":  "Fleet Tester",
				"GIT_COMMITTER_EMAIL": "tester@example.com",
				"GIT_AUTHOR_DATE":     "2025-01-01T00:00:00Z",
				"GIT_COMMITTER_DATE":  "2025-01-01T00:00:00Z",
				"GIT_TERMINAL_PROMPT": "0",
				// bootsync keeps clones of Git URLs in the user cache
				// directory by default: keep it inside the script's $WORK.
				"XDG_CACHE_HOME": env.WorkDir + "/.cache",
				"GORACE":         childGORACE(),
			} {
				env.Setenv(k, v)
			}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"gitrev":    cmdGitRev,
			"exitcode":  cmdExitCode,
			"registry":  cmdRegistry,
			"pushimage": cmdPushImage,
			"expandenv": cmdExpandEnv,
			"genkey":    cmdGenKey,
		},
	})
}

// childGORACE is GORACE for the bootsync processes the tests start. Under
// -race every process otherwise sleeps a second at exit (atexit_sleep_ms,
// for late race reports), which would make the suite spend most of its time
// asleep; a race found still fails the command (exit status 66).
func childGORACE() string {
	gorace := os.Getenv("GORACE")
	if strings.Contains(gorace, "atexit_sleep_ms") {
		return gorace
	}
	return strings.TrimSpace(gorace + " atexit_sleep_ms=0")
}

// cmdGitRev implements `gitrev VAR [REV]`: it sets $VAR to the full commit
// id of REV (default HEAD) in the current directory's repository, and
// $VAR_SHORT to the 12-digit form bootsync prints in report headers, so
// scripts can compare against commit ids without hard-coding them.
func cmdGitRev(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! gitrev")
	}
	if len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: gitrev VAR [REV]")
	}
	rev := "HEAD"
	if len(args) == 2 {
		rev = args[1]
	}
	cmd := exec.Command("git", "rev-parse", "--verify", rev+"^{commit}")
	cmd.Dir = ts.MkAbs(".")
	cmd.Env = []string{"PATH=" + ts.Getenv("PATH"), "HOME=" + ts.Getenv("HOME"), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=" + os.DevNull}
	out, err := cmd.CombinedOutput()
	if err != nil {
		ts.Fatalf("git rev-parse %s: %v\n%s", rev, err, out)
	}
	id := strings.TrimSpace(string(out))
	ts.Setenv(args[0], id)
	ts.Setenv(args[0]+"_SHORT", id[:12])
}

// cmdExitCode implements `exitcode N PROG [ARGS...]`: it runs PROG like exec
// (stdout and stderr can be checked afterwards) and requires exit status N.
// `! exec` only says that a command failed; bootsync's exit statuses mean
// different things (diff: 1 = changes, 2 = trouble), so scripts check them.
func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! exitcode")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: exitcode N PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exitcode: %q is not a number", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			ts.Fatalf("exitcode: run %s: %v", args[1], err)
		}
		got = exitErr.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

// cmdRegistry implements `registry`: it starts go-containerregistry's
// in-process registry on 127.0.0.1 for this script, stopped when the script
// ends, and sets $REGISTRY to its host:port.
func cmdRegistry(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: registry")
	}
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	ts.Defer(srv.Close)
	ts.Setenv("REGISTRY", strings.TrimPrefix(srv.URL, "http://"))
}

// cmdPushImage implements `pushimage REF VAR`: it pushes a new random image
// to the tag REF (moving the tag if it exists) and sets $VAR to the image's
// manifest digest.
func cmdPushImage(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: pushimage REF VAR")
	}
	tag, err := name.NewTag(args[0], name.StrictValidation)
	ts.Check(err)
	img, err := random.Image(256, 1)
	ts.Check(err)
	ts.Check(remote.Write(tag, img))
	digest, err := img.Digest()
	ts.Check(err)
	ts.Setenv(args[1], digest.String())
}

// cmdExpandEnv implements `expandenv FILE...`: it replaces $VAR and ${VAR}
// in the files with the script's environment, for fleet files that name a
// registry whose port is only known when the script runs.
func cmdExpandEnv(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: expandenv FILE...")
	}
	for _, file := range args {
		path := ts.MkAbs(file)
		data, err := os.ReadFile(path)
		ts.Check(err)
		ts.Check(os.WriteFile(path, []byte(os.Expand(string(data), ts.Getenv)), 0o644))
	}
}
