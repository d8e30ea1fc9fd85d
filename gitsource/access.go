package gitsource

import "time"

// Access is how a remote is reached: the host configuration's repo.auth
// and repo.allowHTTP for the agent, or a command's flags for `--repo URL`.
// Credentials are named by file, never given inline.
type Access struct {
	AllowHTTP             bool
	UsernameFile          string // with PasswordFile: HTTP basic auth
	PasswordFile          string
	SSHKeyFile            string // with KnownHostsFile: ssh:// and scp-style URLs
	KnownHostsFile        string
	InsecureIgnoreHostKey bool
	CAFile                string // extra CA certificates (PEM) for https
	NetworkTimeout        time.Duration
}

// Options are the options that reach the remote as a says.
func (a Access) Options() []Option {
	opts := []Option{WithNetworkTimeout(a.NetworkTimeout)}
	if a.AllowHTTP {
		opts = append(opts, WithAllowHTTP())
	}
	if a.PasswordFile != "" {
		opts = append(opts, WithBasicAuthFiles(a.UsernameFile, a.PasswordFile))
	}
	if a.SSHKeyFile != "" {
		opts = append(opts, WithSSHKeyFile(a.SSHKeyFile, a.KnownHostsFile))
	}
	if a.InsecureIgnoreHostKey {
		opts = append(opts, WithInsecureIgnoreHostKey())
	}
	if a.CAFile != "" {
		opts = append(opts, WithCABundle(a.CAFile))
	}
	return opts
}
