package rollout

import (
	"context"
	"fmt"
	"io/fs"
	"strings"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/hostspec"
)

// apply edits the group's file in the work tree for the decision and
// returns the commit message.
func (st *state) apply(d *Decision) (string, error) {
	p := st.policy
	var (
		data []byte
		err  error
		msg  strings.Builder
	)
	switch d.Action {
	case ActionAdvance:
		next := p.Waves[d.Next-1]
		data, err = setBucket(st.original, next.Bucket)
		fmt.Fprintf(&msg, "rollout %s: wave %d of %d (buckets %s)\n\n%s.\n", p.Group, d.Next, d.Waves, next.Bucket, d.Summary)
		if len(d.Healthy) > 0 {
			fmt.Fprintf(&msg, "\nHealthy in wave %d: %s\n", d.Wave, strings.Join(d.Healthy, ", "))
		}
		notes(&msg, "Failed (within the budget)", d.Failed)
		fmt.Fprintf(&msg, "\n%s: advance %d/%d\n", Trailer, d.Next, d.Waves)
	case ActionHalt:
		fmt.Fprintf(&msg, "rollout %s: halted at wave %d of %d (%d failed host(s))\n\n%s.\n", p.Group, d.Wave, d.Waves, len(d.Failed), d.Summary)
		notes(&msg, "Failed", d.Failed)
		if p.OnFailure == hostspec.OnFailureRevert {
			var what string
			data, what, err = st.reverted()
			fmt.Fprintf(&msg, "\n%s\n", what)
		} else {
			data, err = setPaused(st.original)
			fmt.Fprintf(&msg, "\nThe hosts of group %s are paused (update.paused: true in %s): they keep what they run and stage nothing new. "+
				"Hosts outside the group are not affected. To resume, fix the group's spec and set paused: false.\n", p.Group, st.file)
		}
		fmt.Fprintf(&msg, "\n%s: halt %d/%d\n", Trailer, d.Wave, d.Waves)
	}
	if err != nil {
		return "", fmt.Errorf("rollout of group %s: edit %s: %w", p.Group, st.file, err)
	}
	if err := st.c.write(st.file, data); err != nil {
		return "", fmt.Errorf("rollout of group %s: write %s: %w", p.Group, st.file, err)
	}
	return msg.String(), nil
}

func notes(b *strings.Builder, title string, hs []HostNote) {
	if len(hs) == 0 {
		return
	}
	fmt.Fprintf(b, "\n%s:\n", title)
	for _, h := range hs {
		fmt.Fprintf(b, "- %s: %s\n", h.Host, h.Why)
	}
}

// reverted is the group's file as it was before the rollout began: before
// the newest commit to it that this job did not make (nil: it did not
// exist then).
func (st *state) reverted() ([]byte, string, error) {
	for _, cm := range st.history {
		if trailer(cm.Message) != "" {
			continue
		}
		subject, _, _ := strings.Cut(cm.Message, "\n")
		what := fmt.Sprintf("%s is back as it was before %s (%q)", st.file, cm.Hash.String()[:12], subject)
		parent, err := cm.Parent(0)
		if err != nil {
			return nil, what + "; it did not exist then and is removed", nil
		}
		data, ok, err := fileAt(parent, st.c.repoPath(st.file))
		if err != nil || !ok {
			return nil, what + "; it did not exist then and is removed", err
		}
		return data, what, nil
	}
	return nil, "", fmt.Errorf("no commit to %s that started the rollout in its last %d changes", st.file, len(st.history))
}

// validate loads the edited work tree as the hosts will see the commit, and
// checks the edit did what the decision says.
func (st *state) validate(ctx context.Context, d *Decision) error {
	wt, err := gitsource.OpenWorkTree(ctx, st.c.dir)
	if err != nil {
		return err
	}
	var fsys fs.FS = wt
	if p := strings.Trim(st.c.cfg.Path, "/"); p != "" && p != "." {
		if fsys, err = fs.Sub(wt, p); err != nil {
			return err
		}
	}
	repo, err := hostspec.Load(ctx, fsys)
	if err != nil {
		return fmt.Errorf("rollout of group %s: the edited repository does not load; nothing was pushed: %w", st.policy.Group, err)
	}
	if d.Action == ActionHalt && st.policy.OnFailure == hostspec.OnFailureRevert {
		return nil
	}
	for _, g := range repo.Groups() {
		if g.Name != st.policy.Group {
			continue
		}
		if d.Action == ActionAdvance && g.Selector.Bucket != st.policy.Waves[d.Next-1].Bucket {
			return fmt.Errorf("rollout of group %s: the edit of %s did not set selector.bucket to %q; nothing was pushed", st.policy.Group, st.file, st.policy.Waves[d.Next-1].Bucket)
		}
		if d.Action == ActionHalt {
			for _, name := range repo.HostNames() {
				if h, _ := repo.Host(name); g.Selector.Matches(name, h.Labels) {
					spec, err := repo.Resolve(ctx, name, nil)
					if err == nil && !spec.Update.Paused {
						return fmt.Errorf("rollout of group %s: after the edit %s is still not paused (a higher layer sets update.paused: false); nothing was pushed", st.policy.Group, name)
					}
				}
			}
		}
		return nil
	}
	return fmt.Errorf("rollout of group %s: the group is gone after the edit; nothing was pushed", st.policy.Group)
}
