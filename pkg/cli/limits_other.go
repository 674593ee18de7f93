//go:build !linux

package cli

// limitResources does nothing here; the server's timeout still kills
// translate --api.
func limitResources() {}
