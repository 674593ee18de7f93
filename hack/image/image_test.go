package main

import (
	"archive/tar"
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestArchive opens the archive `make image` wrote (IMAGE_ARCHIVE), checks
// the index and the config of every platform, and runs the binary found in
// the layer of this machine's platform.
func TestArchive(t *testing.T) {
	archive := os.Getenv("IMAGE_ARCHIVE")
	if archive == "" {
		if os.Getenv("E2E_REQUIRED") != "" {
			t.Fatal("IMAGE_ARCHIVE is not set; run make test-deploy")
		}
		t.Skip("IMAGE_ARCHIVE is not set; make test-deploy builds the image and runs this test")
	}
	dir := t.TempDir()
	untar(t, archive, dir)
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	topManifest, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(topManifest.Manifests) != 1 || topManifest.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != RefName {
		t.Fatalf("index.json: want one entry named %q, got %+v", RefName, topManifest.Manifests)
	}
	idx, err := top.ImageIndex(topManifest.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex {
		t.Errorf("index media type %s, want %s", im.MediaType, types.OCIImageIndex)
	}
	var platforms []string
	ran := false
	for _, d := range im.Manifests {
		if d.Platform == nil {
			t.Fatalf("manifest %s has no platform", d.Digest)
		}
		platform := d.Platform.OS + "/" + d.Platform.Architecture
		platforms = append(platforms, platform)
		t.Run(platform, func(t *testing.T) {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			cf := checkConfig(t, img, d.Platform)
			bin := extract(t, img, strings.TrimPrefix(Entrypoint, "/"), t.TempDir())
			checkMachine(t, bin, d.Platform.Architecture)
			if d.Platform.Architecture == runtime.GOARCH && d.Platform.OS == runtime.GOOS {
				runBinary(t, bin, cf)
				ran = true
			}
		})
	}
	if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(platforms, want) {
		t.Errorf("platforms %v, want %v", platforms, want)
	}
	if !ran {
		t.Errorf("no image for %s/%s, so no binary was run", runtime.GOOS, runtime.GOARCH)
	}
}

func checkConfig(t *testing.T, img v1.Image, platform *v1.Platform) *v1.ConfigFile {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.MarshalIndent(cf.Config, "", "  ")
	t.Logf("config of %s/%s:\n%s", cf.OS, cf.Architecture, out)
	if cf.OS != platform.OS || cf.Architecture != platform.Architecture {
		t.Errorf("config platform %s/%s, index says %s/%s", cf.OS, cf.Architecture, platform.OS, platform.Architecture)
	}
	if cf.Config.User != User {
		t.Errorf("user %q, want %q", cf.Config.User, User)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{Entrypoint}) {
		t.Errorf("entrypoint %q, want %q", cf.Config.Entrypoint, Entrypoint)
	}
	if _, ok := cf.Config.ExposedPorts[Port]; !ok || len(cf.Config.ExposedPorts) != 1 {
		t.Errorf("exposed ports %v, want only %s", cf.Config.ExposedPorts, Port)
	}
	want := map[string]string{
		"org.opencontainers.image.source":   "https://github.com/falco-am-bridge/falco-am-bridge",
		"org.opencontainers.image.version":  os.Getenv("IMAGE_VERSION"),
		"org.opencontainers.image.revision": os.Getenv("IMAGE_REVISION"),
	}
	for k, v := range want {
		got, ok := cf.Config.Labels[k]
		if !ok || got == "" || (v != "" && got != v) {
			t.Errorf("label %s = %q, want %q", k, got, v)
		}
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("media types %s, %s: want OCI", m.MediaType, m.Config.MediaType)
	}
	if len(m.Layers) != 1 {
		t.Errorf("%d layers, want 1", len(m.Layers))
	}
	return cf
}

// extract writes the file name of the image's file system into dir, and
// checks the files a non-root static binary needs are there.
func extract(t *testing.T, img v1.Image, name, dir string) string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	seen := map[string]*tar.Header{}
	var out string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[strings.TrimSuffix(h.Name, "/")] = h
		if h.Name != name {
			continue
		}
		out = filepath.Join(dir, filepath.Base(name))
		f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, tr); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if h.Mode&0o111 == 0 {
			t.Errorf("%s is not executable: mode %o", name, h.Mode)
		}
	}
	if out == "" {
		t.Fatalf("%s is not in the image", name)
	}
	for _, f := range []string{"etc/passwd", "etc/group", "etc/ssl/certs/ca-certificates.crt"} {
		if seen[f] == nil {
			t.Errorf("%s is not in the image", f)
		}
	}
	if h := seen[strings.TrimPrefix(StorageDir, "/")]; h == nil || h.Uid != 65532 {
		t.Errorf("%s must exist and belong to 65532, got %+v", StorageDir, h)
	}
	return out
}

// checkMachine proves the binary is static and built for arch, also for
// the platform this machine cannot run.
func checkMachine(t *testing.T, bin, arch string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if f.Machine != want {
		t.Errorf("binary for %s is %s", arch, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("binary for %s is dynamically linked (has an interpreter): build with CGO_ENABLED=0", arch)
		}
	}
	// The image has no /usr/share/zoneinfo: the tz template function
	// needs the time zone database built in.
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" || !slices.Contains(strings.Split(settings["-tags"], ","), "timetzdata") {
		t.Errorf("binary for %s: build settings %v, want CGO_ENABLED=0 and -tags timetzdata", arch, settings)
	}
}

func runBinary(t *testing.T, bin string, cf *v1.ConfigFile) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "version")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s version: %v\n%s", bin, err, stderr.String())
	}
	t.Logf("%s version:\n%s", Entrypoint, stdout.String())
	if v := cf.Config.Labels["org.opencontainers.image.version"]; !strings.Contains(stdout.String(), v) {
		t.Errorf("version output does not name the image's version %q:\n%s", v, stdout.String())
	}
	// The shipped mapping is built in: check passes with no file at all.
	cmd = exec.Command(bin, "check")
	cmd.Dir = t.TempDir()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%s check: %v\n%s", bin, err, out)
	}
}

func untar(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, dir+string(filepath.Separator)) {
			t.Fatalf("archive entry %q leaves the directory", h.Name)
		}
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBuildIsReproducible: the same inputs give the same index digest.
func TestBuildIsReproducible(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(bin, []byte("not really a binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	opts := Options{
		Binaries: map[string]string{"linux/amd64": bin, "linux/arm64": bin},
		Version:  "v1.0.0", Revision: "abc", Source: "https://example.com/x",
		Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	var digests []v1.Hash
	for range 2 {
		idx, err := Build(opts)
		if err != nil {
			t.Fatal(err)
		}
		d, err := idx.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	if digests[0] != digests[1] {
		t.Errorf("two builds of the same inputs: %s and %s", digests[0], digests[1])
	}
	opts.Revision = "def"
	idx, err := Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := idx.Digest(); d == digests[0] {
		t.Error("a new revision did not change the digest")
	}
}
