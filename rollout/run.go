package rollout

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/bootsync/bootsync/fleetstatus"
	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/hostspec"
)

// StatusSource gives every host's last report (fleetstatus.Client).
type StatusSource interface {
	Fetch(ctx context.Context, now time.Time) (*fleetstatus.Fleet, error)
}

// Options configure a run.
type Options struct {
	Git    Git
	Status StatusSource
	// TempDir holds the clone while the run works ("" for the system's).
	TempDir string
	// DryRun decides without committing or pushing.
	DryRun bool
	Now    func() time.Time

	beforePush func() // tests: hold a run between its commit and its push
}

// maxAttempts bounds how often a run that lost the race to push decides
// again on the new tip.
const maxAttempts = 3

// Run makes one decision and, for an advance or a halt, pushes it as one
// commit. A push refused because the branch moved (another run, a person)
// decides again on the new tip, so two racing runs never both advance.
func Run(ctx context.Context, opts Options) (*Decision, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	for range maxAttempts {
		d, err := runOnce(ctx, opts)
		if !errors.Is(err, errLostRace) {
			return d, err
		}
	}
	return nil, fmt.Errorf("rollout: the branch kept moving while deciding (%d attempts); run again", maxAttempts)
}

// state is what a run read from the repository.
type state struct {
	c        *clone
	repo     *hostspec.Repo
	policy   *hostspec.Rollout
	group    *hostspec.Group
	file     string
	wave     int
	waveCm   *object.Commit
	history  []*object.Commit
	original []byte
}

func runOnce(ctx context.Context, opts Options) (*Decision, error) {
	c, err := cloneRepo(ctx, opts.Git, opts.TempDir)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(c.dir)
	st, d, err := read(ctx, c)
	if err != nil || d != nil {
		return d, err
	}
	now := opts.Now()
	status, err := opts.Status.Fetch(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("rollout of group %s: read the fleet's status: %w", st.policy.Group, err)
	}
	status.Complete(st.repo, c.head.Hash.String())
	dec := Decide(Situation{Policy: st.policy, Wave: st.wave, WaveCommit: st.waveCm.Hash.String(), WaveTime: st.waveCm.Committer.When,
		Hosts: st.hosts(status), Status: status, Includes: c.includes(st.waveCm), Now: now})
	if opts.DryRun || (dec.Action != ActionAdvance && dec.Action != ActionHalt) {
		return &dec, nil
	}
	msg, err := st.apply(&dec)
	if err != nil {
		return nil, err
	}
	if err := st.validate(ctx, &dec); err != nil {
		return nil, err
	}
	h, err := c.commit(st.file, msg, now)
	if err != nil {
		return nil, fmt.Errorf("rollout of group %s: %w", st.policy.Group, err)
	}
	if opts.beforePush != nil {
		opts.beforePush()
	}
	branch, err := c.push(ctx, h)
	if err != nil {
		return nil, err
	}
	dec.Commit, dec.Branch = h.String(), branch
	return &dec, nil
}

// read loads the fleet at the clone's tip and finds the rollout's state;
// a non-nil Decision means there is nothing to decide.
func read(ctx context.Context, c *clone) (*state, *Decision, error) {
	local, err := gitsource.OpenLocal(ctx, c.dir)
	if err != nil {
		return nil, nil, err
	}
	rev, err := local.Revision(ctx, c.head.Hash.String())
	if err != nil {
		return nil, nil, err
	}
	var fsys fs.FS = rev.FS
	if p := strings.Trim(c.cfg.Path, "/"); p != "" && p != "." {
		if fsys, err = rev.FS.Subtree(p); err != nil {
			return nil, nil, fmt.Errorf("fleet repository at %s: %w", c.head.Hash, err)
		}
	}
	repo, err := hostspec.Load(ctx, fsys, hostspec.WithRevision(c.head.Hash.String()))
	if err != nil {
		return nil, nil, fmt.Errorf("load fleet repository at %s: %w", c.head.Hash, err)
	}
	st := &state{c: c, repo: repo, policy: repo.Fleet().Rollout}
	if st.policy == nil {
		return nil, &Decision{Action: ActionNone, Summary: "fleet.yaml has no rollout policy"}, nil
	}
	for _, g := range repo.Groups() {
		if g.Name == st.policy.Group {
			st.group = g
		}
	}
	if st.group == nil {
		return nil, &Decision{Action: ActionNone, Group: st.policy.Group, Summary: "no group named " + st.policy.Group + ": no rollout in progress"}, nil
	}
	st.file = st.group.Source.File
	if st.history, err = c.history(st.file, 200); err != nil || len(st.history) == 0 {
		return nil, nil, fmt.Errorf("rollout of group %s: no history of %s: %v", st.policy.Group, st.file, err)
	}
	st.waveCm = st.history[0]
	if strings.HasPrefix(trailer(st.waveCm.Message), "halt") {
		return nil, &Decision{Action: ActionHalted, Group: st.policy.Group,
			Summary: fmt.Sprintf("the rollout of group %s was halted by %s; commit a change to %s (for example update.paused: false) to resume", st.policy.Group, st.waveCm.Hash.String()[:12], st.file)}, nil
	}
	lo, hi, err := hostspec.ParseBucketRange(st.group.Selector.Bucket)
	if err != nil {
		return nil, nil, fmt.Errorf("rollout of group %s: %w", st.policy.Group, err)
	}
	st.wave = slices.IndexFunc(st.policy.Waves, func(w hostspec.Wave) bool { return w.Lo == lo && w.Hi == hi })
	if st.wave < 0 {
		return nil, nil, fmt.Errorf("rollout of group %s: %s selects buckets %q, which is none of rollout.waves in %s; set it to the first wave (%q) to start a rollout",
			st.policy.Group, st.file, st.group.Selector.Bucket, hostspec.FleetFile, st.policy.Waves[0].Bucket)
	}
	if st.original, _, err = fileAt(c.head, c.repoPath(st.file)); err != nil {
		return nil, nil, fmt.Errorf("rollout of group %s: read %s: %w", st.policy.Group, st.file, err)
	}
	return st, nil, nil
}

// hosts are the hosts the group selects now: declared ones, and hosts that
// report without a file of their own.
func (st *state) hosts(status *fleetstatus.Fleet) []string {
	var out []string
	for _, h := range status.Hosts {
		var labels map[string]string
		if decl, ok := st.repo.Host(h.Host); ok {
			labels = decl.Labels
		}
		if st.group.Selector.Matches(h.Host, labels) {
			out = append(out, h.Host)
		}
	}
	return out
}

// trailer is the value of the job's trailer in a commit message.
func trailer(msg string) string {
	for _, line := range strings.Split(strings.TrimSpace(msg), "\n") {
		if v, ok := strings.CutPrefix(line, Trailer+": "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
