// Package policy decides whether a host may boot an OS image: registry
// allow-lists first (no request), then a signature for exactly the pinned
// digest by one of the public keys the host trusts.
//
// # Formats
//
// The tag-based cosign format ("<repo>:sha256-<hex>.sig", simple-signing
// payload) is what cosign v2, cosign v3 with --new-bundle-format=false,
// skopeo and podman write, and the only format bootc's containers-policy
// (sigstoreSigned) checks. It is verified like containers/image does with
// signedIdentity matchRepository: the signature over the exact payload
// bytes must verify with a trusted key (sigstore pkg/signature; ECDSA, RSA
// or Ed25519), the payload type must be "cosign container image signature",
// its docker-manifest-digest must be the digest being verified, and its
// docker-reference must name the same repository (registry host and port,
// and path; a tag in it is ignored — cosign writes the repository only).
//
// bootsync also accepts cosign v3's default Sigstore bundles (DSSE in-toto
// statement, predicate https://sigstore.dev/cosign/sign/v1) attached through
// OCI referrers or the "sha256-<hex>" referrers tag, verified with
// sigstore-go against the trusted keys. bootc itself cannot verify bundles:
// a host whose containers policy requires signatures (bootc switch
// --enforce-container-sigpolicy) still needs the tag-based format, and
// should run with WithBundles(false) so bootsync never accepts an image that
// bootc then refuses. A bundle names no repository, so its acceptance rests
// on the digest and the key alone; the key is trusted for the repositories
// the allow-lists permit.
//
// # Binding to the digest
//
// Verify takes a digest reference only. ResolveAndVerify resolves a tag once
// (or takes the digest from bootsync.lock) and verifies that digest; deploy
// Verdict.Reference and never resolve the tag again in between.
//
// # Refusals
//
// A refusal is a *RefusedError with a stable reason (no-signature,
// bad-signature, wrong-digest, wrong-identity, registry-not-allowed,
// malformed-signature) that also matches the Err* sentinels with errors.Is.
// When several signatures exist and none is valid, the reason is the
// failure that came closest to passing and the detail lists every one.
// Registry failures (timeouts, 5xx, 401) are not refusals: they are
// returned with their registry reason, see Reason.
package policy
