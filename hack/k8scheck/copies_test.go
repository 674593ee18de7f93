package k8scheck

import (
	"bytes"
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the copies of shipped files from their originals")

// Helm and kustomize read only files inside a chart or an overlay, so these
// hold copies of shipped files; they must not drift from the originals.
// go test ./... -run TestCopies -update rewrites them.
var copies = []struct{ copy, original string }{
	{"examples/helm/falco-am-bridge/files/mapping.yaml", "mapping/default.yaml"},
	{"examples/helm/falco-am-bridge/files/falco-am-bridge-rules.yml", "examples/prometheus/falco-am-bridge-rules.yml"},
	{"examples/kubernetes/standalone/mapping.yaml", "mapping/default.yaml"},
	{"examples/kubernetes/sidecar/mapping.yaml", "mapping/default.yaml"},
	{"examples/kubernetes/operator/mapping.yaml", "mapping/default.yaml"},
	{"examples/kubernetes/sidecar/alertmanager.yml", "alertmanager/alertmanager.yml"},
	{"examples/kubernetes/sidecar/falco.tmpl", "alertmanager/templates/falco.tmpl"},
}

func TestCopiesOfShippedFiles(t *testing.T) {
	for _, c := range copies {
		want, err := os.ReadFile(repo + "/" + c.original)
		if err != nil {
			t.Fatal(err)
		}
		if *update {
			if err := os.WriteFile(repo+"/"+c.copy, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(repo + "/" + c.copy)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s: run go test -run TestCopies -update in hack/k8scheck", c.copy, c.original)
		}
	}
}
