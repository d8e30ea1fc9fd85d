package reconcile

import (
	"context"
	"fmt"

	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/secrets"
)

// decryptSecrets returns the spec with its secrets decrypted with this
// host's own keys (read at every pass: keys may be rotated), or a pass
// error with reason secret when any one of them cannot be: then nothing of
// the pass is applied, so /etc is never left half updated. The error says
// which file and entry, and which keys the file is for and the host holds;
// never plaintext.
func (a *Agent) decryptSecrets(ctx context.Context, spec *hostspec.HostSpec, commit string) (*hostspec.HostSpec, error) {
	if !spec.HasSecrets() {
		return spec, nil
	}
	kr, err := secrets.LoadKeyring(ctx, a.cfg.AgeIdentityFiles, a.cfg.SSHHostKeys)
	if err != nil {
		return nil, &PassError{Reason: ReasonSecret, Err: fmt.Errorf("load this host's secret keys: %w", err)}
	}
	dec, err := spec.Decrypted(ctx, kr)
	if err != nil {
		return nil, &PassError{Reason: ReasonSecret, Err: fmt.Errorf("decrypt secrets at %s: %w", short(commit), err)}
	}
	return dec, nil
}
