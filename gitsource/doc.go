// Package gitsource reads the fleet repository from Git: commit trees as
// fs.FS (TreeFS), local repositories (OpenLocal), and remote repositories
// followed through a local bare cache (New, Remote.Poll) or mirrored for
// reading (CloneForRead).
//
// Git is the fleet's control plane, so what Poll accepts is a security
// boundary. Trust is configured by the host, never by the repository:
//
//   - WithCommitKeys: the commit must carry a valid OpenPGP or SSH signature
//     by one of the host's keys (*UnsignedCommitError, *UntrustedSignatureError).
//   - Fast-forward only: a ref that moves to a commit which does not descend
//     from the last applied commit is refused (*NotFastForwardError); git
//     revert is the way back, WithAllowReset the operator's one-off override.
//   - Server identity: known_hosts for SSH (no "accept any host key" unless
//     WithInsecureIgnoreHostKey), system roots plus WithCABundle for HTTPS,
//     and plain http:// only with WithAllowHTTP.
//
// A poll that finds nothing new costs one ref advertisement (one HTTP
// request) and reads nothing else. Typical use by the agent:
//
//	remote, err := gitsource.New(cfg.Repo.URL,
//		gitsource.WithCacheDir(filepath.Join(stateDir, "git")),
//		gitsource.WithRef(cfg.Repo.Ref),
//		gitsource.WithSubPath(cfg.Repo.Path),
//		gitsource.WithBasicAuthFiles(cfg.Repo.Auth.UsernameFile, cfg.Repo.Auth.PasswordFile),
//		gitsource.WithCommitKeys(keys...))
//	res, err := remote.Poll(ctx, journal.LastAppliedCommit)
//	if err != nil {
//		status.GitError = gitsource.ReasonOf(err) // "not-fast-forward", "auth", ...
//		return err // keep the current state
//	}
//	repo, err := hostspec.Load(ctx, res.Revision.FS, hostspec.WithRevision(res.Commit))
//
// Secrets never appear in errors or in a printed Remote: URLs with
// credentials, tokens and the passwords read from files are redacted
// (Redact).
package gitsource
