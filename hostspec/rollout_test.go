package hostspec

import (
	"context"
	"strings"
	"testing"
	"time"
)

const rolloutFleet = `apiVersion: bootsync.dev/v1alpha1
kind: Fleet
spec:
  image: registry.example.com/os/base:stable
rollout:
  group: next
  waves:
    - {bucket: "0-9", soak: 10m}
    - {bucket: "0-49", soak: 1h}
    - {bucket: "0-99"}
  failureBudget: "5%"
  onFailure: revert
`

const nextGroup = `apiVersion: bootsync.dev/v1alpha1
kind: Group
metadata: {name: next}
selector: {bucket: "0-9"}
spec: {image: registry.example.com/os/base:next}
`

func TestRolloutPolicyDecodes(t *testing.T) {
	r := mustLoad(t, files("fleet.yaml", rolloutFleet, "groups/next.yaml", nextGroup))
	ro := r.Fleet().Rollout
	if ro == nil || ro.Group != "next" || ro.OnFailure != OnFailureRevert || len(ro.Waves) != 3 {
		t.Fatalf("rollout = %+v", ro)
	}
	if w := ro.Waves[1]; w.Lo != 0 || w.Hi != 49 || w.Soak != time.Hour || w.Source.Line != 9 {
		t.Fatalf("wave 2 = %+v", w)
	}
	if !ro.FailureBudget.IsShare || ro.FailureBudget.Allowed(40) != 2 || ro.FailureBudget.String() != "5%" {
		t.Fatalf("budget = %+v", ro.FailureBudget)
	}
	if r := mustLoad(t, files("fleet.yaml", strings.Replace(rolloutFleet, "onFailure: revert\n", "", 1), "groups/next.yaml", nextGroup)); r.Fleet().Rollout.OnFailure != OnFailurePause {
		t.Fatalf("default onFailure = %q, want pause", r.Fleet().Rollout.OnFailure)
	}
}

func TestRolloutGroupMayBeAbsent(t *testing.T) {
	// A reverted rollout may have removed its group: no rollout in progress.
	if r := mustLoad(t, files("fleet.yaml", rolloutFleet)); r.Fleet().Rollout.Group != "next" {
		t.Fatalf("rollout = %+v", r.Fleet().Rollout)
	}
}

func TestRolloutPolicyErrorsNameFileLineAndField(t *testing.T) {
	for _, tc := range []struct {
		name, fleet, group, want string
	}{
		{"narrowing wave", strings.Replace(rolloutFleet, `bucket: "0-49"`, `bucket: "0-5"`, 1), nextGroup,
			`fleet.yaml:9:7: rollout.waves[1]: wave "0-5" must contain the wave before it ("0-9")`},
		{"bad budget", strings.Replace(rolloutFleet, `"5%"`, `"lots"`, 1), nextGroup,
			`fleet.yaml:11:18: rollout.failureBudget: invalid failure budget "lots"`},
		{"bad onFailure", strings.Replace(rolloutFleet, "revert", "panic", 1), nextGroup,
			`fleet.yaml:12:14: rollout.onFailure: invalid value "panic": want pause or revert`},
		{"unknown key", strings.Replace(rolloutFleet, "  group: next", "  group: next\n  soak: 1h", 1), nextGroup,
			`rollout.soak: unknown field "soak"`},
		{"bad range", strings.Replace(rolloutFleet, `"0-99"`, `"0-100"`, 1), nextGroup,
			`fleet.yaml:10:16: rollout.waves[2].bucket: invalid bucket range "0-100"`},
		{"group without bucket", rolloutFleet, strings.Replace(nextGroup, `{bucket: "0-9"}`, `{hosts: ["*"]}`, 1),
			`fleet.yaml:6:10: rollout.group: group "next" has no selector.bucket`},
		{"no waves", strings.Split(rolloutFleet, "  waves:")[0], nextGroup,
			`rollout.waves: missing`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := files("fleet.yaml", tc.fleet)
			if tc.group != "" {
				fsys = with(fsys, "groups/next.yaml", tc.group)
			}
			_, err := Load(context.Background(), fsys)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}
