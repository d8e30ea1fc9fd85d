package registry

import (
	"crypto/tls"
	"net/http"
	"strings"
	"sync"
)

// skipVerifyTransport sends requests to hosts that registries.conf marks
// insecure through a transport that does not verify TLS certificates, as
// containers/image does for them; every other host gets the normal one.
type skipVerifyTransport struct {
	secure, insecure http.RoundTripper
	hosts            *sync.Map // lower-case host[:port] → true
}

func newSkipVerifyTransport(secure *http.Transport, hosts *sync.Map) http.RoundTripper {
	insecure := secure.Clone()
	insecure.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // only for registries.conf insecure = true
	return &skipVerifyTransport{secure: secure, insecure: insecure, hosts: hosts}
}

func (t *skipVerifyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if _, ok := t.hosts.Load(strings.ToLower(req.URL.Host)); ok {
		return t.insecure.RoundTrip(req)
	}
	return t.secure.RoundTrip(req)
}
