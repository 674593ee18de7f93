//go:build !unix

package alertmanager

import (
	"net"
	"net/url"
	"testing"
)

// closedURL returns the base URL of a port nothing listens on. The port is
// free again, so another test could be given it: rare enough off unix.
func closedURL(t *testing.T) *url.URL {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return &url.URL{Scheme: "http", Host: addr}
}
