// Package secrets reads the encrypted files a fleet repository may hold for
// /etc: SOPS files (YAML, JSON, dotenv, INI or binary, as sops writes them)
// with age recipients, and plain age files.
//
// Without a key it tells what CI may know: a file's format, the age
// recipients a SOPS file names, the stanzas of an age file, and a
// fingerprint of the ciphertext (ParseSOPS, ParseAge). With a host's own
// keys (Keyring: age identity files, and the SSH host keys as age
// identities, including the X25519 identity ssh-to-age derives from an
// Ed25519 host key) it decrypts them.
//
// The formats are read and decrypted by SOPS's own Go packages (the tree
// stores, the AES-GCM cipher and the age key source) and by filippo.io/age;
// nothing here parses or encrypts by hand. Keys are only ever read from the
// host's files, never from the repository, and no error or value this
// package returns carries plaintext or anything derived from it except
// the decrypted content itself.
package secrets
