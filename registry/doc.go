// Package registry resolves OS image references for bootsync and fetches
// the signature artifacts that package policy verifies. It is built on
// go-containerregistry with a go-retryablehttp transport.
//
// # Which digest is pinned
//
// bootsync pins the digest of exactly what the fleet repo's reference
// resolves to: the top-level manifest, which is an image index for a
// multi-arch image. That digest is what `cosign sign` signs by default,
// what containers-policy.json checks for the reference bootc is given, and
// what bootc is switched to (`bootc switch repo@<digest>`); it is resolved
// once, verified, and deployed, never re-resolved from the tag in between.
//
// bootc reports imageDigest as the digest of the per-platform manifest it
// booted. So a host has converged when its booted imageDigest equals the
// pinned digest (a single-platform image) or the pinned index's entry for
// the host's architecture: Client.IsBooted and Client.PlatformDigest answer
// that, reading the index by its digest (so its content is checked against
// the verified digest) at most once per digest and architecture.
//
// # Requests
//
//   - A digest reference, or a tag with a bootsync.lock entry
//     (ResolvePinned), resolves with no request.
//   - A tag resolves with one HEAD request on a warm Client; a GET follows
//     only when the registry does not answer HEAD. The first contact with a
//     repository adds the registry's /v2/ handshake (plus a token request on
//     registries with bearer auth), so keep one Client per process.
//
// # Credentials
//
// The default keychain reads the files a bootc host has: the first of
// /run/ostree/auth.json, /etc/ostree/auth.json and /usr/lib/ostree/auth.json
// (bootc's order; bootc uses only that one file), then podman's and docker's
// files. Credential helpers are not run. Credentials never appear in errors.
//
// # Errors
//
// Failures are *Error values with a stable Reason ("unauthorized",
// "not-found", "rate-limited", ...). 429 and 5xx are retried with backoff
// (Retry-After honoured up to RetryPolicy.MaxRetryAfter); 401, 403 and 404
// are never retried.
//
// # Mirrors
//
// WithRegistriesConf makes every request follow the host's
// containers-registries.conf (containers/image's sysregistriesv2): mirrors
// allowed for the reference's kind first, the primary last, blocked
// endpoints never, insecure ones over plain HTTP. See README.md.
package registry
