package reconcile

import (
	"strings"
	"testing"
	"time"

	"github.com/bootsync/bootsync/hostspec"
)

const (
	digA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	digC = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// fixedWindow is open in [start, end) and opens next at start.
type fixedWindow struct{ start, end time.Time }

func (w fixedWindow) Open(t time.Time) bool { return !t.Before(w.start) && t.Before(w.end) }
func (w fixedWindow) Next(time.Time) (time.Time, time.Time) {
	return w.start, w.end
}

func dep(d string) *Deployment {
	return &Deployment{ImageRef: "registry.example.com/os/base@" + d, Digest: d}
}

func want(d string, reboot hostspec.RebootStrategy) Desired {
	return Desired{
		Commit:   "c0ffee",
		ImageRef: "registry.example.com/os/base@" + d,
		Digests:  []string{d},
		Update:   hostspec.UpdatePolicy{Reboot: reboot, MaxDeferral: hostspec.Duration(time.Hour)},
	}
}

func actions(p Plan) string {
	var out []string
	for _, s := range p.Steps {
		a := string(s.Action)
		if s.Soft {
			a += "(soft)"
		}
		out = append(out, a)
	}
	return strings.Join(out, ",")
}

func TestDecide(t *testing.T) {
	for _, tt := range decideCases {
		t.Run(tt.name, func(t *testing.T) {
			p := Decide(tt.desired, tt.observed)
			if p.State != tt.wantState || actions(p) != tt.wantSteps {
				t.Fatalf("Decide = state %q steps [%s] (%s); want state %q steps [%s]",
					p.State, actions(p), p.Reason, tt.wantState, tt.wantSteps)
			}
			if !strings.Contains(p.Reason, tt.wantReason) {
				t.Fatalf("reason %q does not mention %q", p.Reason, tt.wantReason)
			}
		})
	}
}

// The windows and update policies TestDecide's cases share, relative to
// now.
var (
	closedWindow = fixedWindow{start: now.Add(36 * time.Hour), end: now.Add(39 * time.Hour)}
	openWindow   = fixedWindow{start: now.Add(-time.Hour), end: now.Add(2 * time.Hour)}

	pausedUpdate     = withUpdate(want(digB, hostspec.RebootImmediate), func(u *hostspec.UpdatePolicy) { u.Paused = true })
	softRebootUpdate = withUpdate(want(digB, hostspec.RebootImmediate), func(u *hostspec.UpdatePolicy) { u.SoftReboot = true })
	usersDeferUpdate = withUpdate(want(digB, hostspec.RebootImmediate), func(u *hostspec.UpdatePolicy) { u.DeferRebootWhileUsers = true })
	windowLockUpdate = want(digB, hostspec.RebootWindowFleetLock)
)

func withWindow(d Desired, w RebootWindow) Desired { d.Windows = w; return d }

// withUpdate returns d with its update policy changed by edit.
func withUpdate(d Desired, edit func(u *hostspec.UpdatePolicy)) Desired {
	edit(&d.Update)
	return d
}

// decideCases are TestDecide's cases: what is desired, what the host has,
// and the plan Decide must make of them.
var decideCases = []struct {
	name       string
	desired    Desired
	observed   Observed
	wantState  State
	wantSteps  string
	wantReason string
}{
	{
		name:      "converged: nothing to do",
		desired:   want(digA, hostspec.RebootImmediate),
		observed:  Observed{Booted: dep(digA)},
		wantState: StateConverged, wantSteps: "",
	},
	{
		name:      "only /etc differs",
		desired:   want(digA, hostspec.RebootImmediate),
		observed:  Observed{Booted: dep(digA), EtcChanges: 2},
		wantState: StateUpdating, wantSteps: "write-etc",
	},
	{
		name:      "new image: /etc first, then stage, then reboot",
		desired:   want(digB, hostspec.RebootImmediate),
		observed:  Observed{Booted: dep(digA), Rollback: dep(digC), EtcChanges: 1},
		wantState: StateUpdating, wantSteps: "write-etc,switch,reboot",
	},
	{
		name:      "already staged: reboot only",
		desired:   want(digB, hostspec.RebootImmediate),
		observed:  Observed{Booted: dep(digA), Staged: dep(digB)},
		wantState: StateUpdating, wantSteps: "reboot",
	},
	{
		name:      "git revert: desired is the rollback deployment, no download",
		desired:   want(digA, hostspec.RebootImmediate),
		observed:  Observed{Booted: dep(digB), Rollback: dep(digA)},
		wantState: StateUpdating, wantSteps: "rollback,reboot",
	},
	{
		name:      "rollback already queued: never toggle it back, just reboot",
		desired:   want(digA, hostspec.RebootImmediate),
		observed:  Observed{Booted: dep(digB), Rollback: dep(digA), RollbackQueued: true},
		wantState: StateUpdating, wantSteps: "reboot",
	},
	{
		name:      "queued rollback away from the desired image is cancelled",
		desired:   want(digB, hostspec.RebootImmediate),
		observed:  Observed{Booted: dep(digB), Rollback: dep(digA), RollbackQueued: true},
		wantState: StateConverged, wantSteps: "cancel-rollback",
	},
	{
		name:      "window closed: stage now, lock the staged deployment, wait",
		desired:   withWindow(want(digB, hostspec.RebootWindow), closedWindow),
		observed:  Observed{Booted: dep(digA), Capabilities: Capabilities{DownloadOnly: true}, Now: now},
		wantState: StateWaiting, wantSteps: "switch,lock-staged",
		wantReason: "maintenance window opens Fri 2026-11-27 00:00",
	},
	{
		name:      "window closed, old bootc without download-only: stage and wait",
		desired:   withWindow(want(digB, hostspec.RebootWindow), closedWindow),
		observed:  Observed{Booted: dep(digA), Now: now},
		wantState: StateWaiting, wantSteps: "switch",
	},
	{
		name:    "window closed, already staged and locked: nothing to do",
		desired: withWindow(want(digB, hostspec.RebootWindow), closedWindow),
		observed: Observed{Booted: dep(digA), Staged: &Deployment{Digest: digB, DownloadOnly: true},
			Capabilities: Capabilities{DownloadOnly: true}, Now: now},
		wantState: StateWaiting, wantSteps: "",
	},
	{
		name:    "window open: unlock the staged deployment and reboot",
		desired: withWindow(want(digB, hostspec.RebootWindow), openWindow),
		observed: Observed{Booted: dep(digA), Staged: &Deployment{Digest: digB, DownloadOnly: true},
			Capabilities: Capabilities{DownloadOnly: true}, Now: now},
		wantState: StateUpdating, wantSteps: "unlock-staged,reboot",
	},
	{
		name:      "fleetlock: take a slot before rebooting",
		desired:   want(digB, hostspec.RebootFleetLock),
		observed:  Observed{Booted: dep(digA), Staged: dep(digB)},
		wantState: StateUpdating, wantSteps: "acquire-lock,reboot",
	},
	{
		name:      "window+fleetlock outside the window: no lock requested",
		desired:   withWindow(windowLockUpdate, closedWindow),
		observed:  Observed{Booted: dep(digA), Staged: dep(digB), Now: now},
		wantState: StateWaiting, wantSteps: "",
	},
	{
		name:      "window+fleetlock inside the window: lock, then reboot",
		desired:   withWindow(windowLockUpdate, openWindow),
		observed:  Observed{Booted: dep(digA), Staged: dep(digB), Now: now},
		wantState: StateUpdating, wantSteps: "acquire-lock,reboot",
	},
	{
		name:      "manual: staged and waiting for the operator",
		desired:   want(digB, hostspec.RebootManual),
		observed:  Observed{Booted: dep(digA), Staged: dep(digB)},
		wantState: StateWaiting, wantSteps: "",
		wantReason: "bootsync reboot",
	},
	{
		name:      "manual: the operator asked for the reboot",
		desired:   want(digB, hostspec.RebootManual),
		observed:  Observed{Booted: dep(digA), Staged: dep(digB), Journal: &Journal{RebootRequested: true}},
		wantState: StateUpdating, wantSteps: "reboot",
	},
	{
		name:      "paused: drift is reported, nothing changes",
		desired:   pausedUpdate,
		observed:  Observed{Booted: dep(digA), EtcChanges: 3},
		wantState: StatePaused, wantSteps: "",
		wantReason: "3 /etc file(s) differ",
	},
	{
		name:    "booted into the new image after our reboot: re-apply /etc, verify",
		desired: want(digB, hostspec.RebootImmediate),
		observed: Observed{Booted: dep(digB), Rollback: dep(digA), BootID: "boot-2", EtcChanges: 1,
			Journal: &Journal{Pending: &PendingReboot{Kind: "update", Digests: []string{digB}, BootID: "boot-1"}}},
		wantState: StateVerifying, wantSteps: "write-etc,verify",
	},
	{
		name:    "rebooted but the new image did not boot: quarantine, never reboot again",
		desired: want(digB, hostspec.RebootImmediate),
		observed: Observed{Booted: dep(digA), Rollback: dep(digB), BootID: "boot-2",
			Journal: &Journal{Pending: &PendingReboot{Kind: "update", Digests: []string{digB}, BootID: "boot-1", From: digA}}},
		wantState: StateQuarantined, wantSteps: "quarantine",
	},
	{
		name:    "rebooted into something else than the update or the image before: quarantine",
		desired: want(digB, hostspec.RebootImmediate),
		observed: Observed{Booted: dep(digC), BootID: "boot-2",
			Journal: &Journal{Pending: &PendingReboot{Kind: "update", Digests: []string{digB}, BootID: "boot-1", From: digA}}},
		wantState: StateQuarantined, wantSteps: "quarantine",
	},
	{
		name:    "power lost before the staged update was finalized: stage it once more, no quarantine",
		desired: want(digB, hostspec.RebootImmediate),
		observed: Observed{Booted: dep(digA), Rollback: dep(digC), BootID: "boot-2",
			Journal: &Journal{Pending: &PendingReboot{Kind: "update", Digests: []string{digB}, BootID: "boot-1", From: digA}}},
		wantState: StateUpdating, wantSteps: "restage,switch,reboot", wantReason: "update to",
	},
	{
		name:    "the staged update lost a second time: quarantine, no third reboot",
		desired: want(digB, hostspec.RebootImmediate),
		observed: Observed{Booted: dep(digA), BootID: "boot-3",
			Journal: &Journal{Restaged: digB, Pending: &PendingReboot{Kind: "update", Digests: []string{digB}, BootID: "boot-2", From: digA}}},
		wantState: StateQuarantined, wantSteps: "quarantine", wantReason: "quarantined",
	},
	{
		name:    "reboot asked for but not done yet (same boot): reboot again",
		desired: want(digB, hostspec.RebootImmediate),
		observed: Observed{Booted: dep(digA), Staged: dep(digB), BootID: "boot-1",
			Journal: &Journal{Pending: &PendingReboot{Kind: "update", Digests: []string{digB}, BootID: "boot-1"}}},
		wantState: StateUpdating, wantSteps: "reboot",
	},
	{
		name:    "quarantined image is held, even when staged",
		desired: want(digB, hostspec.RebootImmediate),
		observed: Observed{Booted: dep(digA), Staged: dep(digB),
			Journal: &Journal{Quarantine: map[string]QuarantineEntry{digB: {Digest: digB, Reason: "health check api failed"}}}},
		wantState: StateQuarantined, wantSteps: "", wantReason: "health check api failed",
	},
	{
		name:    "a different digest in Git is tried normally despite an old quarantine",
		desired: want(digC, hostspec.RebootImmediate),
		observed: Observed{Booted: dep(digA),
			Journal: &Journal{Quarantine: map[string]QuarantineEntry{digB: {Digest: digB, Reason: "bad"}}}},
		wantState: StateUpdating, wantSteps: "switch,reboot",
	},
	{
		name:      "users logged in: defer",
		desired:   usersDeferUpdate,
		observed:  Observed{Booted: dep(digA), Staged: dep(digB), UsersLoggedIn: 2, Now: now},
		wantState: StateWaiting, wantSteps: "",
		wantReason: "2 user session(s)",
	},
	{
		name:    "users logged in past the maximum deferral: reboot",
		desired: usersDeferUpdate,
		observed: Observed{Booted: dep(digA), Staged: dep(digB), UsersLoggedIn: 2, Now: now,
			Journal: &Journal{UsersDeferredSince: now.Add(-2 * time.Hour)}},
		wantState: StateUpdating, wantSteps: "reboot",
	},
	{
		name:      "soft reboot when allowed and capable",
		desired:   softRebootUpdate,
		observed:  Observed{Booted: dep(digA), Staged: &Deployment{Digest: digB, SoftRebootCapable: true}, Capabilities: Capabilities{SoftReboot: true}},
		wantState: StateUpdating, wantSteps: "reboot(soft)",
	},
	{
		name:      "soft reboot allowed but the deployment is not capable: full reboot",
		desired:   softRebootUpdate,
		observed:  Observed{Booted: dep(digA), Staged: dep(digB), Capabilities: Capabilities{SoftReboot: true}},
		wantState: StateUpdating, wantSteps: "reboot",
	},
	{
		name:      "steady on the desired image while holding a lock: release it",
		desired:   want(digA, hostspec.RebootFleetLock),
		observed:  Observed{Booted: dep(digA), Journal: &Journal{FleetLockHeld: true}},
		wantState: StateConverged, wantSteps: "release-lock",
	},
	{
		name:      "not a bootc host",
		desired:   want(digA, hostspec.RebootImmediate),
		observed:  Observed{},
		wantState: StateUnmanaged, wantSteps: "",
	},
}

func TestDecideSwitchesToDigestNeverTag(t *testing.T) {
	d := want(digB, hostspec.RebootImmediate)
	p := Decide(d, Observed{Booted: dep(digA)})
	if len(p.Steps) == 0 || p.Steps[0].Action != ActionSwitch || p.Steps[0].Ref != "registry.example.com/os/base@"+digB {
		t.Fatalf("first step = %+v, want a switch to repo@digest", p.Steps)
	}
}

func TestDecideIndexDigestMatchesPlatformDigest(t *testing.T) {
	// The fleet pins an index; bootc reports the platform manifest.
	d := want(digB, hostspec.RebootImmediate)
	d.Digests = []string{digB, digC}
	p := Decide(d, Observed{Booted: dep(digC)})
	if p.State != StateConverged {
		t.Fatalf("state %q, want converged when bootc reports the platform digest of the pinned index", p.State)
	}
}
