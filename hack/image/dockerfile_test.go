package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// TestDockerfileMatchesImage: the Dockerfile builds what `make image`
// builds: a static binary on an empty base, the same user, port,
// entrypoint, environment and labels.
func TestDockerfileMatchesImage(t *testing.T) {
	f, err := os.Open("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	// The instructions of the last stage, and whether a build stage
	// compiles without cgo.
	var final []*parser.Node
	var static bool
	for _, n := range res.AST.Children {
		switch strings.ToLower(n.Value) {
		case "from":
			final = nil
		case "run":
			static = static || strings.Contains(n.Original, "CGO_ENABLED=0") && strings.Contains(n.Original, "-tags timetzdata")
		}
		final = append(final, n)
	}
	if !static {
		t.Error("no RUN builds with CGO_ENABLED=0 and -tags timetzdata")
	}
	args := func(instruction string) [][]string {
		var all [][]string
		for _, n := range final {
			if !strings.EqualFold(n.Value, instruction) {
				continue
			}
			var vs []string
			for a := n.Next; a != nil; a = a.Next {
				vs = append(vs, a.Value)
			}
			all = append(all, vs)
		}
		return all
	}
	if from := args("from"); len(from) != 1 || from[0][0] != "scratch" {
		t.Errorf("final stage FROM %v, want scratch", from)
	}
	if u := args("user"); len(u) != 1 || u[0][0] != User {
		t.Errorf("USER %v, want %s", u, User)
	}
	if e := args("expose"); len(e) != 1 || e[0][0]+"/tcp" != Port {
		t.Errorf("EXPOSE %v, want %s", e, Port)
	}
	if e := args("entrypoint"); len(e) != 1 || !slices.Equal(e[0], []string{Entrypoint}) {
		t.Errorf("ENTRYPOINT %v, want [%s]", e, Entrypoint)
	}
	env := strings.Join(slices.Concat(args("env")...), " ")
	for _, want := range []string{"PATH", "/bin", "SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"} {
		if !slices.Contains(strings.Fields(env), want) {
			t.Errorf("ENV %q lacks %s", env, want)
		}
	}
	labels := slices.Concat(args("label")...)
	for _, want := range []string{"org.opencontainers.image.source", "org.opencontainers.image.version", "org.opencontainers.image.revision"} {
		if !slices.Contains(labels, want) {
			t.Errorf("no LABEL %s", want)
		}
	}
}
