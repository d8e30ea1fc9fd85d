package reconcile

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bootsync/bootsync/apply/bootc"
	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/policy/fleetlock"
	"github.com/bootsync/bootsync/test/fleetlockserver"
	"github.com/bootsync/bootsync/test/signer"
)

// testTimeout only bounds a test that went wrong; nothing races it.
const testTimeout = 5 * time.Minute

const machineID = "0123456789abcdef0123456789abcdef"

// Windows relative to now (Wednesday 2026-11-25 12:00 UTC).
const (
	windowOpen   = `windows: [{days: [wed], start: "11:00", duration: 2h, timezone: UTC}]`
	windowClosed = `windows: [{days: [sat], start: "02:00", duration: 1h, timezone: UTC}]`
)

// passCase is one pass on a host: what the host has (bootc's deployments,
// the journal, files) and what the fleet repository asks for, and what the
// pass must do: the plan's state and steps, the bootc verbs it ran, whether
// it rebooted, and the reason it failed with.
type passCase struct {
	name  string
	setup func(h *passHost) // the fleet, the host and its journal
	edit  func(*Config)     // the host's configuration
	dry   bool

	wantState  State
	wantSteps  string // the plan's actions, in order
	wantBootc  string // bootc verbs run, in order
	wantReboot bool   // a hard reboot was started
	wantReason Reason // "" for a pass without error
	check      func(t *testing.T, h *passHost, res *PassResult)
}

func (tc passCase) run(t *testing.T) {
	t.Parallel() // each case has a host of its own
	h := newPassHost(t)
	tc.setup(h)
	before := h.rebooted
	edits := []func(*Config){}
	if tc.edit != nil {
		edits = append(edits, tc.edit)
	}
	res, err := h.pass(h.agent(edits...), PassOptions{DryRun: tc.dry})
	if got := ReasonOf(err); got != tc.wantReason {
		t.Fatalf("reason = %q (%v), want %q", got, err, tc.wantReason)
	}
	if res == nil {
		t.Fatalf("no result (err %v)", err)
	}
	if res.Plan.State != tc.wantState || steps(res.Plan) != tc.wantSteps {
		t.Errorf("plan = %s [%s] (%s), want %s [%s]", res.Plan.State, steps(res.Plan), res.Plan.Reason, tc.wantState, tc.wantSteps)
	}
	if got := h.bootc.called(); got != tc.wantBootc {
		t.Errorf("bootc ran %q, want %q", got, tc.wantBootc)
	}
	// A pass whose reboot command failed did start the reboot.
	wantRebooting := tc.wantReboot || strings.Contains(tc.wantBootc, "--apply") || tc.wantReason == ReasonReboot
	if rebooted := h.rebooted > before; rebooted != tc.wantReboot || res.Rebooting != wantRebooting {
		t.Errorf("rebooted = %v, Rebooting = %v, want %v", rebooted, res.Rebooting, tc.wantReboot)
	}
	if !tc.dry {
		st := h.status()
		if st.LastPass == nil || st.LastPass.State != tc.wantState || (tc.wantReason != "" && (st.LastError == nil || st.LastError.Reason != tc.wantReason)) {
			t.Errorf("status.json: last pass %+v, last error %+v", st.LastPass, st.LastError)
		}
	}
	if tc.check != nil {
		tc.check(t, h, res)
	}
}

// updated runs the pass that stages tag and reboots into it.
func updated(tag string, spec ...string) func(h *passHost) {
	return func(h *passHost) {
		h.fleet(tag, spec...)
		if res, err := h.pass(h.agent(), PassOptions{}); err != nil || !res.Rebooting {
			h.t.Fatalf("update pass: %v (plan %+v)", err, res.Plan)
		}
	}
}

// wantMessage checks the message of status.json's last error.
func wantMessage(part string) func(t *testing.T, h *passHost, res *PassResult) {
	return func(t *testing.T, h *passHost, _ *PassResult) {
		if e := h.status().LastError; e == nil || !strings.Contains(e.Message, part) {
			t.Errorf("last error %+v, want it to say %q", e, part)
		}
	}
}

func wantJournal(check func(j *Journal) string) func(t *testing.T, h *passHost, res *PassResult) {
	return func(t *testing.T, h *passHost, _ *PassResult) {
		if msg := check(h.journal()); msg != "" {
			t.Errorf("journal: %s", msg)
		}
	}
}

// TestPassDecides runs every branch of Decide through a whole pass.
func TestPassDecides(t *testing.T) {
	for _, tc := range passDecidesCases {
		t.Run(tc.name, tc.run)
	}
}

// passDecidesCases are TestPassDecides' cases: a branch of Decide each.
var passDecidesCases = []passCase{{
	name:      "converged: the host runs the desired image",
	setup:     func(h *passHost) { h.fleet("v1") },
	wantState: StateConverged,
	check: wantJournal(func(j *Journal) string {
		if j.Committed == "" || j.LastApplied == "" {
			return fmt.Sprintf("committed %q, last applied %q: want both set", j.Committed, j.LastApplied)
		}
		return ""
	}),
}, {
	name:      "dry run: plans the update and changes nothing",
	setup:     func(h *passHost) { h.fleet("v2") },
	dry:       true,
	wantState: StateUpdating, wantSteps: "switch,reboot",
	check: func(t *testing.T, h *passHost, _ *PassResult) {
		if _, err := os.Stat(filepath.Join(h.state, "journal.json")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a dry run wrote the journal: %v", err)
		}
	},
}, {
	name:      "new image: switch, then reboot into it",
	setup:     func(h *passHost) { h.fleet("v2") },
	wantState: StateUpdating, wantSteps: "switch,reboot", wantBootc: "switch", wantReboot: true,
	check: func(t *testing.T, h *passHost, _ *PassResult) {
		p := h.journal().Pending
		if p == nil || p.Kind != pendingUpdate || p.Digests[0] != h.digest["v2"] || p.From != h.digest["v1"] {
			t.Errorf("pending = %+v, want an update from v1 to v2", p)
		}
		if !h.status().RebootPending {
			t.Error("status does not say a reboot is pending")
		}
	},
}, {
	name:      "booted into the update: verified and committed",
	setup:     func(h *passHost) { updated("v2")(h); h.boot() },
	wantState: StateConverged, wantSteps: "verify",
	check: func(t *testing.T, h *passHost, res *PassResult) {
		if j := h.journal(); j.Pending != nil || j.Committed != h.digest["v2"] {
			t.Errorf("pending %+v, committed %s after verification; want v2 committed", j.Pending, j.Committed)
		}
		if res.Health == nil || !res.Health.OK || len(res.Health.Results) == 0 {
			t.Errorf("health = %+v, want the management-plane checks passed", res.Health)
		}
	},
}, {
	name: "booted into an update that fails its health check: quarantined, rolled back",
	setup: func(h *passHost) {
		updated("v2", `health: [{name: app, command: ["/bin/false"], retries: 0, interval: 1s}]`, "update: {reboot: immediate, grace: 1s}")(h)
		h.boot()
	},
	wantState: StateQuarantined, wantSteps: "verify", wantBootc: "rollback", wantReboot: true, wantReason: ReasonHealth,
	check: func(t *testing.T, h *passHost, _ *PassResult) {
		j := h.journal()
		if _, ok := j.Quarantine[h.digest["v2"]]; !ok || j.Pending == nil || j.Pending.Kind != pendingAutoRollback || j.FailedBoot == "" {
			t.Errorf("journal: quarantine %v, pending %+v, failed boot %q", digestsOf(j.Quarantine), j.Pending, j.FailedBoot)
		}
		// The next boot is the old image: the rollback is settled
		// and the quarantined image is not tried again.
		h.boot()
		res, err := h.pass(h.agent(), PassOptions{})
		if err != nil || res.Plan.State != StateQuarantined || len(res.Plan.Steps) != 0 || h.bootc.called() != "" {
			t.Errorf("after the rollback: %v, plan %+v, bootc %q", err, res.Plan, h.bootc.called())
		}
		if p := h.journal().Pending; p != nil {
			t.Errorf("the automatic rollback is still pending: %+v", p)
		}
	},
}, {
	name: "an automatic rollback interrupted before its reboot: finished",
	setup: func(h *passHost) {
		h.fleet("v2")
		h.bootc.booted, h.bootc.rollback = h.entry("v2"), h.entry("v1")
		h.saveJournal(&Journal{Version: journalVersion, Quarantine: map[string]QuarantineEntry{h.digest["v2"]: {Digest: h.digest["v2"], Reason: "health"}},
			Pending: &PendingReboot{Kind: pendingAutoRollback, Digests: []string{h.digest["v1"]}, BootID: "boot-1", From: h.digest["v2"]}})
	},
	wantState: StateQuarantined, wantSteps: "rollback,reboot", wantBootc: "rollback", wantReboot: true,
}, {
	name: "rebooted into the old image, the new one a fallback: quarantined",
	setup: func(h *passHost) {
		updated("v2")(h)
		h.bootc.rollback, h.bootc.staged = h.entry("v2"), nil // it booted and fell back
		h.newBoot()
	},
	wantState: StateQuarantined, wantSteps: "quarantine",
	check: wantJournal(func(j *Journal) string {
		if len(j.Quarantine) != 1 || j.Pending != nil {
			return fmt.Sprintf("quarantine %v, pending %+v", digestsOf(j.Quarantine), j.Pending)
		}
		return ""
	}),
}, {
	name: "the staged update was lost at the reboot: staged once more",
	setup: func(h *passHost) {
		updated("v2")(h)
		h.bootc.staged = nil // the shutdown did not finalize it
		h.newBoot()
	},
	wantState: StateUpdating, wantSteps: "restage,switch,reboot", wantBootc: "switch", wantReboot: true,
	check: wantJournal(func(j *Journal) string {
		if j.Restaged == "" || len(j.Quarantine) != 0 {
			return fmt.Sprintf("restaged %q, quarantine %v", j.Restaged, digestsOf(j.Quarantine))
		}
		return ""
	}),
}, {
	name: "booted into the update, /etc changed meanwhile: /etc written before the checks",
	setup: func(h *passHost) {
		updated("v2", `etc: [{path: /etc/motd, content: "hello\n"}]`)(h)
		h.boot()
		h.write("etc/motd", "edited by hand\n")
	},
	wantState: StateConverged, wantSteps: "write-etc,verify",
	check: func(t *testing.T, h *passHost, _ *PassResult) {
		if b, err := os.ReadFile(filepath.Join(h.root, "etc/motd")); err != nil || string(b) != "hello\n" {
			t.Errorf("/etc/motd = %q, %v", b, err)
		}
		if j := h.journal(); j.Pending != nil || j.Committed != h.digest["v2"] {
			t.Errorf("pending %+v, committed %s; want v2 committed", j.Pending, j.Committed)
		}
	},
}, {
	name: "the staged update was lost at two reboots: quarantined, not staged again",
	setup: func(h *passHost) {
		updated("v2")(h)
		h.bootc.staged = nil // the shutdown did not finalize it
		h.newBoot()
		if res, err := h.pass(h.agent(), PassOptions{}); err != nil || steps(res.Plan) != "restage,switch,reboot" {
			h.t.Fatalf("restage pass: %v, %+v", err, res.Plan)
		}
		h.bootc.staged = nil // lost once more
		h.newBoot()
	},
	wantState: StateQuarantined, wantSteps: "quarantine",
	check: func(t *testing.T, h *passHost, res *PassResult) {
		if !strings.Contains(res.Plan.Steps[0].Reason, "not applied at two reboots") {
			t.Errorf("quarantine reason %q", res.Plan.Steps[0].Reason)
		}
		if _, ok := h.journal().Quarantine[h.digest["v2"]]; !ok {
			t.Errorf("quarantine %v, want v2", digestsOf(h.journal().Quarantine))
		}
	},
}, {
	name: "a rollback reboot came back on the same image: the rollback target quarantined",
	setup: func(h *passHost) {
		h.fleet("v1")
		h.bootc.booted, h.bootc.rollback = h.entry("v2"), h.entry("v1")
		if res, err := h.pass(h.agent(), PassOptions{}); err != nil || steps(res.Plan) != "rollback,reboot" {
			h.t.Fatalf("rollback pass: %v, %+v", err, res.Plan)
		}
		h.bootc.rollbackQueued = false // the boot did not take the rollback
		h.newBoot()
	},
	wantState: StateQuarantined, wantSteps: "quarantine",
	check: wantJournal(func(j *Journal) string {
		if len(j.Quarantine) != 1 || j.Pending != nil {
			return fmt.Sprintf("quarantine %v, pending %+v; want v1 quarantined, nothing pending", digestsOf(j.Quarantine), j.Pending)
		}
		return ""
	}),
}, {
	name: "update.paused with /etc drift: reported, not written",
	setup: func(h *passHost) {
		h.fleet("v2", "update: {reboot: immediate, paused: true}", `etc: [{path: /etc/motd, content: "hello\n"}]`)
	},
	wantState: StatePaused,
	check: func(t *testing.T, h *passHost, res *PassResult) {
		if !strings.Contains(res.Plan.Reason, "1 /etc file(s) differ from the spec") {
			t.Errorf("reason %q", res.Plan.Reason)
		}
		if _, err := os.Stat(filepath.Join(h.root, "etc/motd")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a paused host had /etc/motd written: %v", err)
		}
	},
}, {
	name:      "update.paused: nothing changes",
	setup:     func(h *passHost) { h.fleet("v2", "update: {reboot: immediate, paused: true}") },
	wantState: StatePaused,
}, {
	name:      "/etc differs: written, the image stays",
	setup:     func(h *passHost) { h.fleet("v1", `etc: [{path: /etc/motd, content: "hello\n"}]`) },
	wantState: StateUpdating, wantSteps: "write-etc",
	check: func(t *testing.T, h *passHost, _ *PassResult) {
		if b, err := os.ReadFile(filepath.Join(h.root, "etc/motd")); err != nil || string(b) != "hello\n" {
			t.Errorf("/etc/motd = %q, %v", b, err)
		}
	},
}, {
	name:      "desired image quarantined: held",
	setup:     func(h *passHost) { h.fleet("v2"); h.saveJournal(quarantined(h.digest["v2"])) },
	wantState: StateQuarantined,
}, {
	name: "running a quarantined desired image: reported",
	setup: func(h *passHost) {
		h.fleet("v2")
		h.bootc.booted = h.entry("v2")
		h.saveJournal(quarantined(h.digest["v2"]))
	},
	wantState: StateQuarantined,
}, {
	name: "the desired image is the rollback deployment: rollback, no download",
	setup: func(h *passHost) {
		h.fleet("v1")
		h.bootc.booted, h.bootc.rollback = h.entry("v2"), h.entry("v1")
	},
	wantState: StateUpdating, wantSteps: "rollback,reboot", wantBootc: "rollback", wantReboot: true,
	check: wantJournal(func(j *Journal) string {
		if j.Pending == nil || j.Pending.Kind != pendingRollback {
			return fmt.Sprintf("pending %+v, want a rollback", j.Pending)
		}
		return ""
	}),
}, {
	name: "a rollback to the desired image is queued: reboot",
	setup: func(h *passHost) {
		h.fleet("v1")
		h.bootc.booted, h.bootc.rollback, h.bootc.rollbackQueued = h.entry("v2"), h.entry("v1"), true
	},
	wantState: StateUpdating, wantSteps: "reboot", wantReboot: true,
}, {
	name: "a queued rollback would leave the desired image: cancelled",
	setup: func(h *passHost) {
		h.fleet("v1")
		h.bootc.rollback, h.bootc.rollbackQueued = h.entry("v2"), true
	},
	wantState: StateConverged, wantSteps: "cancel-rollback", wantBootc: "rollback",
}, {
	name: "a queued rollback to another image, a new image desired: cancelled, switched",
	setup: func(h *passHost) {
		h.fleet("v3")
		h.bootc.rollback, h.bootc.rollbackQueued = h.entry("v2"), true
	},
	wantState: StateUpdating, wantSteps: "cancel-rollback,switch,reboot", wantBootc: "rollback,switch", wantReboot: true,
}, {
	name: "staged, the window is closed: waits, staged image locked",
	setup: func(h *passHost) {
		h.fleet("v2", "update: {reboot: window, "+windowClosed+"}")
		h.bootc.staged = h.entry("v2")
	},
	wantState: StateWaiting, wantSteps: "lock-staged", wantBootc: "upgrade --download-only",
	check: func(t *testing.T, h *passHost, res *PassResult) {
		if !h.bootc.staged.DownloadOnly || !strings.Contains(res.Plan.Reason, "maintenance window opens") {
			t.Errorf("staged %+v, reason %q", h.bootc.staged, res.Plan.Reason)
		}
	},
}, {
	name: "locked staged image, the window is open: unlocked, rebooted",
	setup: func(h *passHost) {
		h.fleet("v2", "update: {reboot: window, "+windowOpen+"}")
		h.bootc.staged = h.entry("v2")
		h.bootc.staged.DownloadOnly = true
	},
	wantState: StateUpdating, wantSteps: "unlock-staged,reboot", wantBootc: "upgrade --from-downloaded", wantReboot: true,
}, {
	name:      "update.reboot manual: staged and locked, waiting for the operator",
	setup:     func(h *passHost) { h.fleet("v2", "update: {reboot: manual}") },
	wantState: StateWaiting, wantSteps: "switch,lock-staged", wantBootc: "switch,upgrade --download-only",
}, {
	name: "users logged in: the reboot is deferred",
	setup: func(h *passHost) {
		h.fleet("v2", "update: {reboot: immediate, deferRebootWhileUsers: true, maxDeferral: 4h}")
		h.write("run/systemd/sessions/3", "CLASS=user\nTYPE=tty\nSTATE=active\n")
	},
	wantState: StateWaiting, wantSteps: "switch,lock-staged", wantBootc: "switch,upgrade --download-only",
	check: wantJournal(func(j *Journal) string {
		if !j.UsersDeferredSince.Equal(now) {
			return fmt.Sprintf("users deferred since %v, want %v", j.UsersDeferredSince, now)
		}
		return ""
	}),
}, {
	name: "soft reboot into a staged image that allows it",
	setup: func(h *passHost) {
		h.fleet("v2", "update: {reboot: immediate, softReboot: true}")
		h.bootc.staged = h.entry("v2")
		h.bootc.staged.SoftRebootCapable = true
	},
	wantState: StateUpdating, wantSteps: "reboot(soft)", wantBootc: "upgrade --apply --soft-reboot",
}, {
	name: "an /etc change that needs a reboot: rebooted on the same image",
	setup: func(h *passHost) {
		h.fleet("v1", `etc: [{path: /etc/motd, content: "hello\n", onChange: {reboot: true}}]`)
		if res, err := h.pass(h.agent(), PassOptions{}); err != nil || steps(res.Plan) != "write-etc" {
			h.t.Fatalf("write pass: %v, %+v", err, res.Plan)
		}
	},
	wantState: StateUpdating, wantSteps: "reboot", wantReboot: true,
	check: wantJournal(func(j *Journal) string {
		if j.Pending == nil || j.Pending.Kind != pendingEtc {
			return fmt.Sprintf("pending %+v, want an /etc reboot", j.Pending)
		}
		return ""
	}),
}, {
	name:      "not a bootc host: nothing is done",
	setup:     func(h *passHost) { h.fleet("v1"); h.bootc.booted = nil },
	wantState: StateUnmanaged, wantReason: ReasonNotBootc,
}}

// TestPassFleetLock takes, waits for and releases a FleetLock reboot slot.
func TestPassFleetLock(t *testing.T) {
	// One FleetLock server (one slot) per case: the cases run in parallel.
	servers := map[*passHost]*fleetlockserver.Server{}
	var mu sync.Mutex
	withSlot := func(h *passHost) *fleetlockserver.Server {
		srv := fleetlockserver.Start(h.t, map[string]int{"default": 1})
		h.write("etc/machine-id", machineID+"\n")
		h.fleet("v2", "update: {reboot: fleetlock, fleetlock: {url: \""+srv.URL()+"\", group: default}}")
		mu.Lock()
		defer mu.Unlock()
		servers[h] = srv
		return srv
	}
	server := func(h *passHost) *fleetlockserver.Server {
		mu.Lock()
		defer mu.Unlock()
		return servers[h]
	}
	for _, tc := range []passCase{{
		name:      "a slot is free: taken, then the host reboots",
		setup:     func(h *passHost) { withSlot(h) },
		wantState: StateUpdating, wantSteps: "switch,acquire-lock,reboot", wantBootc: "switch", wantReboot: true,
		check: func(t *testing.T, h *passHost, _ *PassResult) {
			srv := server(h)
			if !h.journal().FleetLockHeld || !slices.Equal(srv.Holders("default"), []string{mustAppID(t)}) {
				t.Errorf("slot: journal %v, server holders %v", h.journal().FleetLockHeld, srv.Holders("default"))
			}
			// After the reboot, verification releases the slot.
			h.boot()
			res, err := h.pass(h.agent(), PassOptions{})
			if err != nil || res.Plan.State != StateConverged || h.journal().FleetLockHeld || len(srv.Holders("default")) != 0 {
				t.Errorf("after the reboot: %v, plan %+v, slot held %v, holders %v", err, res.Plan, h.journal().FleetLockHeld, srv.Holders("default"))
			}
		},
	}, {
		name: "another host holds the only slot: waiting, nothing rebooted",
		setup: func(h *passHost) {
			other := holdSlot(h, withSlot(h), "another-machine")
			h.t.Cleanup(func() { _ = other.SteadyState(context.Background()) })
		},
		wantState: StateWaiting, wantSteps: "switch,acquire-lock,reboot", wantBootc: "switch",
		check: func(t *testing.T, h *passHost, res *PassResult) {
			if !strings.Contains(res.Plan.Reason, "FleetLock has no reboot slot now") || h.journal().FleetLockHeld {
				t.Errorf("reason %q, slot held %v", res.Plan.Reason, h.journal().FleetLockHeld)
			}
		},
	}, {
		name: "a slot still held on the desired image: released",
		setup: func(h *passHost) {
			holdSlot(h, withSlot(h), mustAppID(h.t))
			h.bootc.booted = h.entry("v2")
			h.saveJournal(&Journal{Version: journalVersion, FleetLockHeld: true, Committed: h.digest["v2"]})
		},
		wantState: StateConverged, wantSteps: "release-lock",
		check: func(t *testing.T, h *passHost, _ *PassResult) {
			if h.journal().FleetLockHeld || len(server(h).Holders("default")) != 0 {
				t.Errorf("slot held: journal %v, server %v", h.journal().FleetLockHeld, server(h).Holders("default"))
			}
		},
	}} {
		t.Run(tc.name, tc.run)
	}
}

// holdSlot takes srv's slot in group default for the machine id, as that
// machine's agent would before its reboot.
func holdSlot(h *passHost, srv *fleetlockserver.Server, id string) *fleetlock.Client {
	c, err := fleetlock.New(srv.URL(), "default", id)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := c.PreReboot(ctx); err != nil {
		h.t.Fatal(err)
	}
	return c
}

func mustAppID(t *testing.T) string {
	id, err := fleetlock.AppSpecificID(machineID, fleetlock.AppID)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func quarantined(digest string) *Journal {
	return &Journal{Version: journalVersion, Quarantine: map[string]QuarantineEntry{digest: {Digest: digest, Reason: "health check app failed"}}}
}

// TestPassErrors: every way a step can fail is a pass error with its
// reason, in status.json, and leaves what the journal needs to resume.
func TestPassErrors(t *testing.T) {
	for _, tc := range passErrorsCases {
		t.Run(tc.name, tc.run)
	}
}

// errBootcFails is what the fake bootc returns for a verb told to fail.
var errBootcFails = errors.New("bootc: error: simulated")

// passErrorsCases are TestPassErrors' cases: a way a step fails each.
var passErrorsCases = []passCase{{
	name:       "bootc status fails",
	setup:      func(h *passHost) { h.fleet("v2"); h.bootc.fail = map[string]error{"status": errBootcFails} },
	wantReason: ReasonBootc,
}, {
	name:      "bootc switch fails: the intent stays in the journal",
	setup:     func(h *passHost) { h.fleet("v2"); h.bootc.fail = map[string]error{"switch": errBootcFails} },
	wantState: StateUpdating, wantSteps: "switch,reboot", wantBootc: "switch", wantReason: ReasonBootc,
	check: wantJournal(func(j *Journal) string {
		if j.Intent == nil || j.Intent.Action != ActionSwitch {
			return fmt.Sprintf("intent %+v, want the switch", j.Intent)
		}
		return ""
	}),
}, {
	name: "bootc rollback fails",
	setup: func(h *passHost) {
		h.fleet("v1")
		h.bootc.booted, h.bootc.rollback = h.entry("v2"), h.entry("v1")
		h.bootc.fail = map[string]error{"rollback": errBootcFails}
	},
	wantState: StateUpdating, wantSteps: "rollback,reboot", wantBootc: "rollback", wantReason: ReasonBootc,
}, {
	name: "an older bootc cannot lock the staged image: the pass goes on",
	setup: func(h *passHost) {
		h.fleet("v2", "update: {reboot: manual}")
		h.bootc.fail = map[string]error{"upgrade --download-only": fmt.Errorf("upgrade --download-only: %w", bootc.ErrUnsupported)}
	},
	wantState: StateWaiting, wantSteps: "switch,lock-staged", wantBootc: "switch,upgrade --download-only",
}, {
	name: "the journal cannot be written after a step",
	setup: func(h *passHost) {
		h.fleet("v2")
		h.bootc.before = func(verb string) {
			// The state directory breaks while bootc runs.
			p := filepath.Join(h.state, "journal.json")
			if err := os.Remove(p); err != nil {
				h.t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(p, "x"), 0o700); err != nil {
				h.t.Fatal(err)
			}
		}
	},
	wantState: StateUpdating, wantSteps: "switch,reboot", wantBootc: "switch", wantReason: ReasonState,
}, {
	name: "/etc cannot be written",
	setup: func(h *passHost) {
		h.fleet("v1", `etc: [{path: /etc/motd, content: "hello\n"}]`)
		h.etcApplyErr = errors.New("write /etc/motd: read-only file system")
	},
	wantState: StateUpdating, wantSteps: "write-etc", wantReason: ReasonEtc,
}, {
	name:      "the reboot command fails",
	setup:     func(h *passHost) { h.fleet("v2"); h.failReboot = errors.New("reboot: systemctl reboot: exit status 1") },
	wantState: StateUpdating, wantSteps: "switch,reboot", wantBootc: "switch", wantReason: ReasonReboot,
	check: wantJournal(func(j *Journal) string {
		if j.Pending == nil || j.Intent == nil || j.Intent.Action != ActionReboot {
			return fmt.Sprintf("pending %+v, intent %+v: want both recorded before the reboot", j.Pending, j.Intent)
		}
		return ""
	}),
}, {
	name:  "the reboot command returns but the host does not reboot",
	setup: func(h *passHost) { h.fleet("v2"); h.realReboot = true },
	edit: func(c *Config) {
		// The wait for the shutdown is what is under test: nothing
		// else can end it, so its length does not matter.
		c.RebootCommand, c.RebootWait = []string{"/bin/true"}, time.Millisecond
	},
	wantState: StateUpdating, wantSteps: "switch,reboot", wantBootc: "switch", wantReason: ReasonReboot,
	check: func(t *testing.T, h *passHost, _ *PassResult) {
		if msg := h.status().LastError.Message; !strings.Contains(msg, "did not reboot within") {
			t.Errorf("last error %q", msg)
		}
	},
}, {
	name: "bootc cannot release the locked staged image",
	setup: func(h *passHost) {
		h.fleet("v2")
		h.bootc.staged = h.entry("v2")
		h.bootc.staged.DownloadOnly = true
		h.bootc.fail = map[string]error{"upgrade --from-downloaded": errBootcFails}
	},
	wantState: StateUpdating, wantSteps: "unlock-staged,reboot", wantBootc: "upgrade --from-downloaded", wantReason: ReasonBootc,
}, {
	name: "the FleetLock server cannot be reached",
	setup: func(h *passHost) {
		h.write("etc/machine-id", machineID+"\n")
		srv := fleetlockserver.Start(h.t, map[string]int{"default": 1})
		h.fleet("v2", "update: {reboot: fleetlock, fleetlock: {url: \""+srv.URL()+"\", group: default}}")
		srv.Close()
	},
	wantState: StateUpdating, wantSteps: "switch,acquire-lock,reboot", wantBootc: "switch", wantReason: ReasonFleetLock,
}, {
	name: "verification fails and the old image is not the rollback deployment",
	setup: func(h *passHost) {
		updated("v2", `health: [{name: app, command: ["/bin/false"], retries: 0, interval: 1s}]`, "update: {reboot: immediate, grace: 1s}")(h)
		h.boot()
		h.bootc.rollback = h.entry("v3")
	},
	wantState: StateVerifying, wantSteps: "verify", wantReason: ReasonHealth,
	check: func(t *testing.T, h *passHost, _ *PassResult) {
		j := h.journal()
		if _, ok := j.Quarantine[h.digest["v2"]]; !ok || j.Pending != nil {
			t.Errorf("quarantine %v, pending %+v", digestsOf(j.Quarantine), j.Pending)
		}
		if msg := h.status().LastError.Message; !strings.Contains(msg, "cannot roll back automatically") {
			t.Errorf("last error %q", msg)
		}
	},
}, {
	name: "an onChange restart fails: the files are written, the failure a warning",
	setup: func(h *passHost) {
		h.fleet("v1", `etc: [{path: /etc/motd, content: "hello\n", onChange: {restart: [motd.service]}}]`)
		h.systemctl = []string{"/bin/false"}
	},
	wantState: StateUpdating, wantSteps: "write-etc",
	check: func(t *testing.T, h *passHost, _ *PassResult) {
		if b, err := os.ReadFile(filepath.Join(h.root, "etc/motd")); err != nil || string(b) != "hello\n" {
			t.Errorf("/etc/motd = %q, %v", b, err)
		}
		if w := h.status().Warnings; len(w) != 1 || !strings.HasPrefix(w[0], "onChange: ") {
			t.Errorf("warnings %q, want the failed restart", w)
		}
	},
}, {
	name: "no machine ID: FleetLock cannot name the host",
	setup: func(h *passHost) {
		srv := fleetlockserver.Start(h.t, map[string]int{"default": 1})
		h.fleet("v2", "update: {reboot: fleetlock, fleetlock: {url: \""+srv.URL()+"\", group: default}}")
	},
	wantState: StateUpdating, wantSteps: "switch,acquire-lock,reboot", wantBootc: "switch", wantReason: ReasonFleetLock,
	check: wantMessage("machine-id"),
}, {
	name: "the FleetLock slot cannot be released after verification: committed, still held",
	setup: func(h *passHost) {
		h.write("etc/machine-id", machineID+"\n")
		srv := fleetlockserver.Start(h.t, map[string]int{"default": 1})
		updated("v2", "update: {reboot: fleetlock, fleetlock: {url: \""+srv.URL()+"\", group: default}}")(h)
		h.boot()
		srv.Close()
	},
	wantState: StateConverged, wantSteps: "verify", wantReason: ReasonFleetLock,
	check: wantJournal(func(j *Journal) string {
		if !j.FleetLockHeld || j.Pending != nil {
			return fmt.Sprintf("slot held %v, pending %+v: want the slot still recorded, to release on the next pass", j.FleetLockHeld, j.Pending)
		}
		return ""
	}),
}, {
	name: "the soft reboot fails",
	setup: func(h *passHost) {
		h.fleet("v2", "update: {reboot: immediate, softReboot: true}")
		h.bootc.staged = h.entry("v2")
		h.bootc.staged.SoftRebootCapable = true
		h.bootc.fail = map[string]error{"upgrade --apply --soft-reboot": errBootcFails}
	},
	wantState: StateUpdating, wantSteps: "reboot(soft)", wantBootc: "upgrade --apply --soft-reboot", wantReason: ReasonReboot,
	check: wantMessage("soft reboot: bootc: error: simulated"),
}, {
	name: "the automatic rollback fails: quarantined, the rollback stays pending",
	setup: func(h *passHost) {
		updated("v2", `health: [{name: app, command: ["/bin/false"], retries: 0, interval: 1s}]`, "update: {reboot: immediate, grace: 1s}")(h)
		h.boot()
		h.bootc.fail = map[string]error{"rollback": errBootcFails}
	},
	wantState: StateQuarantined, wantSteps: "verify", wantBootc: "rollback", wantReason: ReasonBootc,
	check: wantJournal(func(j *Journal) string {
		if _, ok := j.Quarantine[j.Pending.From]; !ok || j.Pending.Kind != pendingAutoRollback || j.Intent == nil || j.Intent.Action != ActionRollback {
			return fmt.Sprintf("quarantine %v, pending %+v, intent %+v", digestsOf(j.Quarantine), j.Pending, j.Intent)
		}
		return ""
	}),
}, {
	name: "the recorded health checks cannot run: no verdict, nothing rolled back",
	setup: func(h *passHost) {
		updated("v2")(h)
		h.boot()
		j := h.journal()
		j.Pending.Health = []hostspec.HealthCheck{{Name: "unknown-kind"}}
		h.saveJournal(j)
	},
	wantState: StateVerifying, wantSteps: "verify", wantReason: ReasonHealth,
	check: func(t *testing.T, h *passHost, res *PassResult) {
		wantMessage("health checks gave no verdict")(t, h, res)
		wantJournal(func(j *Journal) string {
			if j.Pending == nil || len(j.Quarantine) != 0 {
				return fmt.Sprintf("pending %+v, quarantine %v: want the verification still pending", j.Pending, digestsOf(j.Quarantine))
			}
			return ""
		})(t, h, res)
	},
}, {
	name: "the registry has no such image",
	setup: func(h *passHost) {
		h.fleet("v2")
		h.reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
			if strings.Contains(r.URL.Path, "/manifests/") {
				http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
				return true
			}
			return false
		})
	},
	wantReason: "registry-not-found",
}, {
	name:       "the fleet repository is gone",
	setup:      func(h *passHost) { h.fleet("v2"); os.RemoveAll(h.origin) },
	wantReason: "git-not-found",
}, {
	name: "the image policy refuses the image: nothing is changed",
	setup: func(h *passHost) {
		h.fleet("v2")
		s, err := signer.New()
		if err != nil {
			h.t.Fatal(err)
		}
		if err := s.WritePublicKey(filepath.Join(h.root, "etc/cosign.pub")); err != nil {
			h.t.Fatal(err)
		}
	},
	edit: func(c *Config) {
		c.Trust.SigningKeys, c.Trust.RequireSignatures = []string{filepath.Join(c.Root, "etc/cosign.pub")}, true
	},
	wantState: StateRefused, wantReason: "no-signature",
}}

// TestPassRebootNow: the operator's go-ahead reboots into a staged update
// held by update.reboot: manual, and is dropped when nothing is staged.
func TestPassRebootNow(t *testing.T) {
	h := newPassHost(t)
	h.fleet("v2", "update: {reboot: manual}")
	if res, err := h.pass(h.agent(), PassOptions{}); err != nil || res.Plan.State != StateWaiting {
		t.Fatalf("manual: %v, %+v", err, res.Plan)
	}
	a := h.agent()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	h.cancel = cancel
	res, err := a.RebootNow(ctx)
	if err != nil || !res.Rebooting || h.rebooted != 1 || h.journal().Pending == nil {
		t.Fatalf("reboot now: %v, rebooting %v, rebooted %d", err, res != nil && res.Rebooting, h.rebooted)
	}
	if h.journal().RebootRequested {
		t.Error("the go-ahead is still recorded after the reboot it was for")
	}

	h.boot()
	if _, err := h.pass(h.agent(), PassOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	h.cancel = cancel
	res, err = h.agent().RebootNow(ctx)
	if err != nil || res.Rebooting || h.rebooted != 1 {
		t.Fatalf("nothing staged: %v, rebooting %v", err, res != nil && res.Rebooting)
	}
	if h.journal().RebootRequested {
		t.Error("the go-ahead was kept although nothing rebooted")
	}
}

// TestPassUnquarantine removes quarantined images by prefix or all.
func TestPassUnquarantine(t *testing.T) {
	h := newPassHost(t)
	j := quarantined(h.digest["v2"])
	j.Quarantine[h.digest["v3"]] = QuarantineEntry{Digest: h.digest["v3"]}
	h.saveJournal(j)
	ctx := context.Background()
	if _, err := Unquarantine(ctx, h.state, false, []string{"sha256:none"}); err == nil || !strings.Contains(err.Error(), "no quarantined image matches sha256:none") {
		t.Fatalf("no match: %v", err)
	}
	got, err := Unquarantine(ctx, h.state, false, []string{h.digest["v2"][:20]})
	if err != nil || !slices.Equal(got, []string{h.digest["v2"]}) {
		t.Fatalf("by prefix: %v, %v", got, err)
	}
	got, err = Unquarantine(ctx, h.state, true, nil)
	if err != nil || !slices.Equal(got, []string{h.digest["v3"]}) || len(h.journal().Quarantine) != 0 {
		t.Fatalf("all: %v, %v, left %v", got, err, digestsOf(h.journal().Quarantine))
	}
}
