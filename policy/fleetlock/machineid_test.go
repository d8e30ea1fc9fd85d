package fleetlock

import (
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func writeMachineID(t *testing.T, content string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "machine-id"), []byte(content), 0o444); err != nil {
		t.Fatal(err)
	}
	return root
}

// Vectors computed independently with systemd 252's own implementation:
//
//	unshare -m sh -c 'mount --bind FILE /etc/machine-id &&
//	  systemd-id128 machine-id --app-specific=819f4c67-fb34-48b3-8fa8-8959280aa180'
//
// where FILE holds the machine id.
func TestMachineIDMatchesSystemdAppSpecificVectors(t *testing.T) {
	if got := hex.EncodeToString(AppID[:]); got != "819f4c67fb3448b38fa88959280aa180" {
		t.Fatalf("AppID = %s, differs from the documented UUID", got)
	}
	vectors := []struct{ machineID, want string }{
		{"0123456789abcdef0123456789abcdef", "a64601dbe9b84b1192d739c39cdc88d0"},
		{"c988d2509fdf4cdcbed39037c56406fb", "69f1f187aa2b4b4395bf0281daa7c1f6"},
	}
	for _, v := range vectors {
		got, err := MachineID(writeMachineID(t, v.machineID+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if got != v.want {
			t.Errorf("MachineID for %s = %s, systemd says %s", v.machineID, got, v.want)
		}
		if got == v.machineID {
			t.Errorf("MachineID returned the raw machine id")
		}
		// The same id written in upper case is the same machine.
		upper, err := MachineID(writeMachineID(t, strings.ToUpper(v.machineID)))
		if err != nil || upper != v.want {
			t.Errorf("upper-case machine id: %s, %v; want %s", upper, err, v.want)
		}
	}
}

// On a machine with systemd, compare with systemd-id128 on the real
// /etc/machine-id as well.
func TestMachineIDMatchesSystemdID128OnThisHost(t *testing.T) {
	tool, err := exec.LookPath("systemd-id128")
	if err != nil {
		t.Skip("systemd-id128 is not installed; the fixed vectors above still apply")
	}
	if _, err := os.Stat("/etc/machine-id"); err != nil {
		t.Skip("this machine has no /etc/machine-id")
	}
	out, err := exec.Command(tool, "machine-id", "--app-specific=819f4c67-fb34-48b3-8fa8-8959280aa180").Output()
	if err != nil {
		t.Fatalf("systemd-id128: %v", err)
	}
	got, err := MachineID("/")
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSpace(string(out)); got != want {
		t.Fatalf("MachineID(/) = %s, systemd-id128 says %s", got, want)
	}
}

func TestAppSpecificIDIsAVersion4UUIDPerApplication(t *testing.T) {
	mid := "3d1219c7c4c5404aaa1f6d2a48adfda4"
	a, err := AppSpecificID(mid, AppID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := AppSpecificID(mid, [16]byte{1})
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("different applications got the same id")
	}
	for _, id := range []string{a, b} {
		raw, err := hex.DecodeString(id)
		if err != nil || len(raw) != 16 || id != strings.ToLower(id) {
			t.Fatalf("id %q is not 32 lowercase hex digits", id)
		}
		if raw[6]>>4 != 4 || raw[8]>>6 != 2 {
			t.Fatalf("id %s is not marked as a version 4, variant 1 UUID", id)
		}
	}
}

func TestMachineIDRejectsUnusableIDs(t *testing.T) {
	cases := []struct{ name, content, want string }{
		{"empty", "", "empty"},
		{"first boot", "uninitialized\n", "not initialized yet"},
		{"null id", strings.Repeat("0", 32) + "\n", "all zeros"},
		{"short", "0123456789abcdef\n", "not 32 hexadecimal digits"},
		{"not hex", strings.Repeat("z", 32), "not 32 hexadecimal digits"},
		{"uuid with dashes", "01234567-89ab-cdef-0123-456789abcdef", "not 32 hexadecimal digits"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := writeMachineID(t, tc.content)
			_, err := MachineID(root)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), filepath.Join(root, "etc", "machine-id")) {
				t.Fatalf("MachineID = %v, want an error naming the file and %q", err, tc.want)
			}
		})
	}
	if _, err := MachineID(t.TempDir()); err == nil || !strings.Contains(err.Error(), "read machine id") {
		t.Fatalf("missing file: %v", err)
	}
}
