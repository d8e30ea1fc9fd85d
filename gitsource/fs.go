package gitsource

import "io/fs"

// FS is one commit's files as bootsync reads them: a Git tree (*TreeFS)
// or a published fleet artifact (package ocisource). hostspec resolves
// symbolic links itself through fs.ReadLinkFS, so a link that leaves the
// repository is refused whichever way the commit arrived, and
// ReadFileLimit refuses an oversized file before its content is read.
type FS interface {
	fs.ReadDirFS
	fs.ReadFileFS
	fs.StatFS
	fs.ReadLinkFS
	// ReadFileLimit is ReadFile for a file of at most limit bytes; a
	// larger one fails with *boundedread.TooLargeError before it is read.
	ReadFileLimit(name string, limit int64) ([]byte, error)
	// Subtree returns the directory dir as a file system of its own, in
	// which links that leave dir fail as links that leave the repository.
	Subtree(dir string) (FS, error)
}

var _ FS = (*TreeFS)(nil)
