//go:build !containers_image_openpgp

package hostpolicy

// Without the build tag containers_image_openpgp, containers/image's
// signature package links libgpgme through cgo. Rather than fail with a
// missing C header, the build stops here with the fix in the error:
//
//	go build -tags containers_image_openpgp ./cmd/bootsync
//
// (make and .ci/run set GOFLAGS=-tags=containers_image_openpgp).
var _ = build_bootsync_with_tags_containers_image_openpgp
