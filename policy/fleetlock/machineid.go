package fleetlock

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/bootsync/bootsync/internal/boundedread"
)

// AppID is bootsync's application UUID for app-specific machine ids
// (819f4c67-fb34-48b3-8fa8-8959280aa180, generated at random once for
// bootsync and fixed forever: changing it changes every host's FleetLock id
// and orphans the slots they hold).
var AppID = [16]byte{0x81, 0x9f, 0x4c, 0x67, 0xfb, 0x34, 0x48, 0xb3, 0x8f, 0xa8, 0x89, 0x59, 0x28, 0x0a, 0xa1, 0x80}

// MachineID reads root/etc/machine-id and returns bootsync's app-specific
// id for the machine, the FleetLock client id. The raw machine id is
// confidential (machine-id(5)) and never leaves the host; the derived id is
// stable for the machine, and is what
// `systemd-id128 machine-id --app-specific=819f4c67-fb34-48b3-8fa8-8959280aa180`
// prints there.
func MachineID(root string) (string, error) {
	path := filepath.Join(root, "etc", "machine-id")
	raw, err := boundedread.ReadFile(path, 4096)
	if err != nil {
		return "", fmt.Errorf("read machine id: %w", err)
	}
	id, err := AppSpecificID(strings.TrimSpace(string(raw)), AppID)
	if err != nil {
		return "", fmt.Errorf("machine id in %s: %w", path, err)
	}
	return id, nil
}

// AppSpecificID derives an application-specific id from a machine id (32
// hex digits) the way systemd's sd_id128_get_machine_app_specific does:
// HMAC-SHA256 keyed with the 16 machine-id bytes over the 16 app-id bytes,
// truncated to 16 bytes and marked as a random (version 4, variant 1) UUID.
// The result is formatted as 32 lowercase hex digits, like /etc/machine-id
// and like Zincati's FleetLock ids.
func AppSpecificID(machineID string, app [16]byte) (string, error) {
	switch {
	case machineID == "":
		return "", errors.New("machine id is empty")
	case machineID == "uninitialized":
		return "", errors.New("machine id is not initialized yet (first boot in progress)")
	case len(machineID) != 32:
		return "", fmt.Errorf("machine id %q is not 32 hexadecimal digits", machineID)
	}
	key, err := hex.DecodeString(machineID)
	if err != nil {
		return "", fmt.Errorf("machine id is not 32 hexadecimal digits: %w", err)
	}
	if allZero(key) {
		// systemd refuses the null id too (ENOMEDIUM): every such host
		// would share one FleetLock identity.
		return "", errors.New("machine id is all zeros")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(app[:])
	sum := mac.Sum(nil)[:16]
	sum[6] = sum[6]&0x0f | 0x40 // version 4
	sum[8] = sum[8]&0x3f | 0x80 // variant 1 (RFC 4122)
	return hex.EncodeToString(sum), nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
