//go:build unix

package alertmanager

import (
	"net"
	"net/url"
	"strconv"
	"syscall"
	"testing"
)

// closedURL returns the base URL of a port that refuses connections. A
// socket is bound to it but does not listen: connecting gets a refusal,
// and no other test can be given the port while this one runs.
func closedURL(t *testing.T) *url.URL {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*syscall.SockaddrInet4).Port
	return &url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
}
