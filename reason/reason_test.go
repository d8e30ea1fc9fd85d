package reason

import "testing"

func TestIn(t *testing.T) {
	for _, tc := range []struct {
		r    Reason
		part string
		want Reason
	}{
		{"not-fast-forward", "git", "git-not-fast-forward"},
		{"unavailable", "registry", "registry-unavailable"},
		{"registry-error", "registry", "registry-error"}, // already in the part
	} {
		if got := tc.r.In(tc.part); got != tc.want {
			t.Errorf("%q.In(%q) = %q, want %q", tc.r, tc.part, got, tc.want)
		}
	}
}
