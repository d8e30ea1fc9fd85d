package secrets

import (
	"slices"
	"strings"
	"testing"
)

func TestParseRecipient(t *testing.T) {
	web := newHost(t)
	held, err := ParseRecipient(web.SSHPublic + " root@web")
	if err != nil {
		t.Fatal(err)
	}
	// The SSH key and the age1… recipient ssh-to-age derives from it.
	if !slices.Equal(held, []string{web.SSHPublic, web.SSHToAge(t)}) {
		t.Errorf("ssh-ed25519: held %q, want %q", held, []string{web.SSHPublic, web.SSHToAge(t)})
	}
	held, err = ParseRecipient(web.AgeRecipient)
	if err != nil || !slices.Equal(held, []string{web.AgeRecipient}) {
		t.Errorf("age1: held %q, err %v", held, err)
	}
	// A look-alike: one character changed breaks the bech32 checksum.
	r := []byte(web.AgeRecipient)
	i := len(r) - 5
	if r[i] == 'q' {
		r[i] = 'p'
	} else {
		r[i] = 'q'
	}
	if _, err := ParseRecipient(string(r)); err == nil {
		t.Errorf("look-alike %s accepted", r)
	}
	for _, bad := range []string{"", "AGE-SECRET-KEY-1XYZ", "ssh-ed25519 AAAAnotbase64", "pgp:ABCDEF"} {
		if _, err := ParseRecipient(bad); err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), "AGE-SECRET-KEY-1XYZ") && len(bad) > 40 {
			t.Errorf("error quotes a long value: %v", err)
		}
	}
}
