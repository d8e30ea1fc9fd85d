package faultpoint

import (
	"slices"
	"testing"
)

func TestReachCallsTheArmedHookOnly(t *testing.T) {
	Reach("nothing armed") // must not panic or block
	var seen []string
	Arm(func(p string) { seen = append(seen, p) })
	Reach("a")
	Reach("b")
	Arm(nil)
	Reach("c")
	if !slices.Equal(seen, []string{"a", "b"}) {
		t.Fatalf("hook saw %v, want [a b]", seen)
	}
}
