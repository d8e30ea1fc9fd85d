// Package ocisource delivers the fleet repository through an OCI registry:
// CI publishes each merged commit as a signed artifact (package
// ocisource/publish), and every host polls the registry for it instead of
// the Git server.
//
// # The artifact
//
// One OCI image manifest (application/vnd.oci.image.manifest.v1+json),
// laid out like Flux's `flux push artifact`:
//
//   - config: media type ConfigMediaType, content "{}";
//   - one layer: media type ContentMediaType, a gzip'd tar of the fleet
//     directory at the commit (regular files 0644 or 0755, directories
//     0755, symbolic links 0777, entries in name order, owner 0, time 0), so
//     the same commit always packs to the same bytes;
//   - annotations: the OCI keys org.opencontainers.image.created (the
//     commit time), .source (the Git URL) and .revision ("main@sha1:<id>"),
//     and bootsync's own: AnnotationCommit, AnnotationGeneration,
//     AnnotationCommitTime, AnnotationCommitSignature, AnnotationPath.
//
// The manifest digest is signed in cosign's tag-based format
// ("sha256-<hex>.sig"), so `cosign verify --key` checks it too.
//
// # Polling
//
// Source.Poll costs one manifest HEAD when nothing changed. A new digest is
// verified first (its signature, by a key from the host's trust.fleetKeys),
// then its manifest is read by digest, its generation checked against the
// last applied commit's (anti-rollback), and only then is the layer
// downloaded, bounded by the host's repository size ceiling, and checked
// entry by entry before anything reads it. The result is a
// gitsource.PollResult whose Revision.FS is the artifact's files: hostspec,
// the plan, status and the journal cannot tell it from a Git commit.
//
// # Anti-rollback
//
// A commit's generation is the length of its longest parent chain (git's
// topological level): every descendant of a commit has a higher one. The
// host refuses an artifact whose generation is lower than the last applied
// commit's, or equal with another commit, unless WithAllowReset names its
// commit; a `git revert` is a new, higher generation and rolls the fleet
// back as before. Publishing refuses a commit that does not descend from
// the one already published, so a force-push is caught in CI, where the
// history is.
package ocisource
