package main

import (
	"crypto/elliptic"
	"os"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// cmdGenKey implements `genkey PRIVATE PUBLIC`: it writes a new ECDSA P-256
// key pair, the private half as unencrypted PKCS#8 PEM (what
// `bootsync publish --key` takes besides cosign's encrypted keys), the
// public half as PEM (what trust.fleetKeys and --fleet-key take).
func cmdGenKey(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: genkey PRIVATE PUBLIC")
	}
	priv, pub, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), func(bool) ([]byte, error) { return nil, nil })
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), priv, 0o600))
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), pub, 0o644))
}
