package bootc

import (
	"strings"
	"testing"
)

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]Version{
		"bootc 1.16.9":             {Major: 1, Minor: 16, Patch: 9},
		"bootc 1.16.9\n":           {Major: 1, Minor: 16, Patch: 9},
		"1.1.6":                    {Major: 1, Minor: 1, Patch: 6},
		"bootc 0.1.16":             {Major: 0, Minor: 1, Patch: 16},
		"bootc 1.16.9-3-g534c76ea": {Major: 1, Minor: 16, Patch: 9, Suffix: "-3-g534c76ea"},
		"bootc 1.12":               {Major: 1, Minor: 12},
	} {
		got, err := ParseVersion(in)
		if err != nil {
			t.Errorf("ParseVersion(%q): %v", in, err)
			continue
		}
		if got != want {
			t.Errorf("ParseVersion(%q) = %+v, want %+v", in, got, want)
		}
	}
	for _, bad := range []string{"", "bootc", "foo 1.2.3", "bootc x.y.z", "bootc 1.2.3abc", "error: unexpected argument"} {
		if v, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) = %v, want an error", bad, v)
		}
	}
}

func TestVersionCompareIgnoresSuffix(t *testing.T) {
	a, _ := ParseVersion("bootc 1.16.9-3-g534c76ea")
	b, _ := ParseVersion("bootc 1.16.9")
	if a.Compare(b) != 0 {
		t.Errorf("%v vs %v = %d, want 0", a, b, a.Compare(b))
	}
	older, _ := ParseVersion("1.9.10")
	newer, _ := ParseVersion("1.10.0")
	if older.Compare(newer) != -1 || newer.Compare(older) != 1 {
		t.Errorf("1.9.10 must sort before 1.10.0 (numeric, not lexical)")
	}
}

func TestVersionGates(t *testing.T) {
	gates := map[string]func(Version) bool{
		"FormatVersion": Version.SupportsFormatVersion,
		"SigPolicy":     Version.SupportsSigPolicy,
		"UpgradeApply":  Version.SupportsUpgradeApply,
		"SwitchApply":   Version.SupportsSwitchApply,
		"RollbackApply": Version.SupportsRollbackApply,
		"SoftReboot":    Version.SupportsSoftReboot,
		"DownloadOnly":  Version.SupportsDownloadOnly,
	}
	// For each gate: the last release without it and the first with it.
	for gate, edge := range map[string][2]string{
		"FormatVersion": {"0.1.13", "0.1.14"},
		"SigPolicy":     {"0.1.4", "0.1.5"},
		"UpgradeApply":  {"0.1.2", "0.1.3"},
		"SwitchApply":   {"0.1.15", "0.1.16"},
		"RollbackApply": {"1.1.6", "1.1.7"},
		"SoftReboot":    {"1.6.99", "1.7.0"},
		"DownloadOnly":  {"1.11.5", "1.12.0"},
	} {
		without, _ := ParseVersion(edge[0])
		with, _ := ParseVersion(edge[1])
		if gates[gate](without) {
			t.Errorf("%s: bootc %s claims support", gate, without)
		}
		if !gates[gate](with) {
			t.Errorf("%s: bootc %s denies support", gate, with)
		}
	}
	current, _ := ParseVersion("bootc 1.16.9")
	for name, g := range gates {
		if !g(current) {
			t.Errorf("%s: bootc 1.16.9 denies support", name)
		}
	}
	if !strings.Contains(current.String(), "1.16.9") {
		t.Errorf("String() = %q", current.String())
	}
}

func TestValidatePinnedRef(t *testing.T) {
	const d = "sha256:47e5ed613a970b6574bfa954ab25bb6e85656552899aa518b5961d9645102b38"
	for _, ok := range []string{
		"quay.io/example/os@" + d,
		"127.0.0.1:5000/os@" + d,
		"registry.example.com:443/a/b/c@" + d,
	} {
		if err := ValidatePinnedRef(ok); err != nil {
			t.Errorf("ValidatePinnedRef(%q): %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"quay.io/example/os:stable":                  "not pinned to a digest",
		"quay.io/example/os":                         "not pinned to a digest",
		"quay.io/example/os:stable@" + d:             "both a tag and a digest",
		"127.0.0.1:5000/os:v1@" + d:                  "both a tag and a digest",
		"quay.io/example/os@sha256:47e5":             "is not sha256:<64 lowercase hex>",
		"quay.io/example/os@sha512:" + d[7:] + d[7:]: "is not sha256",
		"quay.io/example/os@" + strings.ToUpper(d):   "is not sha256",
		"os@" + d:                           "image reference",
		"Quay.io/Example/OS@" + d:           "image reference",
		"quay.io/example/os@" + d + "@" + d: "image reference",
	} {
		err := ValidatePinnedRef(bad)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidatePinnedRef(%q) = %v, want an error containing %q", bad, err, want)
		}
	}
}
