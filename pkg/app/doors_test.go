package app

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// pki is a throwaway CA with a server and a client certificate, written
// as PEM files.
type pki struct {
	dir                  string
	caFile               string
	serverCert, serverKy string
	clientCert, clientKy string
	pool                 *x509.CertPool
	client               tls.Certificate
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p.pool = x509.NewCertPool()
	p.pool.AddCert(ca)
	p.caFile = p.write(t, "ca.crt", "CERTIFICATE", caDER)

	issue := func(name string, usage x509.ExtKeyUsage) (string, string, tls.Certificate) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature,
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalECPrivateKey(key)
		certFile := p.write(t, name+".crt", "CERTIFICATE", der)
		keyFile := p.write(t, name+".key", "EC PRIVATE KEY", keyDER)
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		return certFile, keyFile, pair
	}
	p.serverCert, p.serverKy, _ = issue("server", x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKy, p.client = issue("falco", x509.ExtKeyUsageClientAuth)
	return p
}

func (p *pki) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeWebConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func tlsClient(p *pki, cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: p.pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	// exporter-toolkit checks an unknown user against a bcrypt hash too (no
	// timing oracle), which under -race on a loaded machine takes seconds.
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
}

func postWith(t *testing.T, c *http.Client, url string, header http.Header) (int, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(ev("Door test", "Critical"))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestTLSAndBasicAuth wires the bridge as Falco can reach it: TLS with the
// basic auth credentials in the URL (libcurl sends them as a header).
func TestTLSAndBasicAuth(t *testing.T) {
	p := newPKI(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	web := writeWebConfig(t, "tls_server_config:\n  cert_file: "+p.serverCert+"\n  key_file: "+p.serverKy+
		"\nbasic_auth_users:\n  falco: "+string(hash)+"\n")
	am := newFakeAM(t)
	a := startAppTLS(t, p, "--alertmanager.url="+am.URL, "--web.config.file="+web)
	c := tlsClient(p, nil)

	for _, tc := range []struct {
		name, url string
		want      int
	}{
		{"no credentials", "https://" + a.Addr() + "/", http.StatusUnauthorized},
		{"wrong password", "https://falco:wrong@" + a.Addr() + "/", http.StatusUnauthorized},
		{"wrong user", "https://root:s3cret@" + a.Addr() + "/", http.StatusUnauthorized},
		// Whoever may not post events may not reload either.
		{"reload without credentials", "https://" + a.Addr() + "/-/reload", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, err := postWith(t, c, tc.url, nil)
			if err != nil || code != tc.want {
				t.Fatalf("got %d (%v), want %d", code, err, tc.want)
			}
		})
	}
	if n := metricValue(t, a, "falco_am_bridge_events_received_total"); n != 0 {
		t.Fatalf("%v events received through a locked door", n)
	}
	// Go's TLS server answers plain HTTP with a 400 of its own.
	if code, err := postWith(t, &http.Client{Timeout: 5 * time.Second}, "http://"+a.Addr()+"/", nil); err == nil && code != http.StatusBadRequest {
		t.Fatalf("plain HTTP to the TLS listener got %d", code)
	}
	code, err := postWith(t, c, "https://falco:s3cret@"+a.Addr()+"/", nil)
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("right password: %d %v", code, err)
	}
	waitFor(t, "delivery", func() bool { return len(am.alerts()) == 1 })
	if got := metricValue(t, a, "falco_am_bridge_events_accepted_total"); got != 1 {
		t.Fatalf("events_accepted_total = %v after one good and three refused requests", got)
	}
}

// TestMutualTLS: Falco's http_output mtls option, a client certificate.
func TestMutualTLS(t *testing.T) {
	p := newPKI(t)
	web := writeWebConfig(t, "tls_server_config:\n  cert_file: "+p.serverCert+"\n  key_file: "+p.serverKy+
		"\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: "+p.caFile+"\n")
	am := newFakeAM(t)
	a := startAppTLS(t, p, "--alertmanager.url="+am.URL, "--web.config.file="+web)
	if _, err := postWith(t, tlsClient(p, nil), "https://"+a.Addr()+"/", nil); err == nil {
		t.Fatal("a client without a certificate got through")
	}
	code, err := postWith(t, tlsClient(p, &p.client), "https://"+a.Addr()+"/", nil)
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("client certificate: %d %v", code, err)
	}
	waitFor(t, "delivery", func() bool { return len(am.alerts()) == 1 })
}

// TestBearerToken: what falcosidekick's webhook output and proxies send.
func TestBearerToken(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	am := newFakeAM(t)
	a := startApp(t, "--alertmanager.url="+am.URL, "--web.bearer-token-file="+tokenFile)
	c := &http.Client{Timeout: 5 * time.Second}
	for _, tc := range []struct {
		header string
		want   int
	}{
		{"", http.StatusUnauthorized},
		{"Bearer wrong", http.StatusUnauthorized},
		{"Basic dDBrZW4=", http.StatusUnauthorized},
		{"Bearer t0ken", http.StatusAccepted},
	} {
		h := http.Header{}
		if tc.header != "" {
			h.Set("Authorization", tc.header)
		}
		code, err := postWith(t, c, "http://"+a.Addr()+"/", h)
		if err != nil || code != tc.want {
			t.Errorf("Authorization %q: got %d (%v), want %d", tc.header, code, err, tc.want)
		}
	}
	waitFor(t, "delivery", func() bool { return len(am.alerts()) == 1 })
	if code, err := postWith(t, c, "http://"+a.Addr()+"/-/reload", nil); err != nil || code != http.StatusUnauthorized {
		t.Errorf("reload without the token: %d %v", code, err)
	}
	// Health and metrics stay open for probes and Prometheus.
	resp, err := http.Get("http://" + a.Addr() + "/-/ready")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("readiness behind the token: %v %v", resp, err)
	}
	resp.Body.Close()
	if n := metricValue(t, a, "falco_am_bridge_events_received_total"); n != 1 {
		t.Fatalf("events_received_total = %v, want only the authorised one", n)
	}
}

// startAppTLS is startApp for a TLS listener: readiness is polled over
// HTTPS.
func startAppTLS(t *testing.T, p *pki, args ...string) *App {
	t.Helper()
	return startAppWith(t, func(a *App) bool {
		c := tlsClient(p, &p.client)
		resp, err := c.Get("https://" + a.Addr() + "/-/healthy")
		if err != nil {
			// Basic auth guards every path, health included.
			return strings.Contains(err.Error(), "401")
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized
	}, args...)
}
