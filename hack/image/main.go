// Command image assembles the falco-am-bridge container image without a
// container engine, the way ko does: each static binary goes into one layer
// on an empty base, with the files a non-root static binary needs (passwd,
// group, CA certificates), and the images of every platform are written as
// one multi-arch OCI index into an OCI image archive (an OCI layout in a
// tar, what `skopeo copy oci-archive:...` and `docker load` read).
//
//	go -C hack/image run . -out ../../bin/falco-am-bridge-image.tar \
//	  -binary linux/amd64=../../bin/linux-amd64/falco-am-bridge \
//	  -binary linux/arm64=../../bin/linux-arm64/falco-am-bridge \
//	  -version v1.2.3 -revision $(git rev-parse HEAD)
//
// It lives in a module of its own so that go-containerregistry stays out of
// the bridge's dependencies.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// What every image of the bridge is, whatever the platform.
const (
	Entrypoint = "/bin/falco-am-bridge"
	User       = "65532:65532"
	Port       = "2802/tcp"
	// StorageDir is where the durable queue goes (--storage.path); it
	// exists and belongs to the user, so a volume mounted there is
	// writable without an init container.
	StorageDir = "/var/lib/falco-am-bridge"
	// RefName names the index in the archive: oci-archive:FILE:latest.
	RefName = "latest"
)

// Options is what one build is made of.
type Options struct {
	Binaries map[string]string // "linux/amd64" -> path of a static binary
	CABundle string            // CA certificates put at /etc/ssl/certs/ca-certificates.crt; empty: none
	Version  string
	Revision string
	Source   string
	Created  time.Time // image and file times, for reproducible builds
}

type binaryFlag map[string]string

func (b binaryFlag) String() string { return fmt.Sprint(map[string]string(b)) }

func (b binaryFlag) Set(s string) error {
	platform, path, ok := strings.Cut(s, "=")
	if !ok || strings.Count(platform, "/") != 1 {
		return fmt.Errorf("want os/arch=path, got %q", s)
	}
	b[platform] = path
	return nil
}

func main() {
	opts := Options{Binaries: binaryFlag{}}
	out := flag.String("out", "falco-am-bridge-image.tar", "OCI image archive to write")
	flag.Var(binaryFlag(opts.Binaries), "binary", "os/arch=path of a static binary; repeat for every platform")
	flag.StringVar(&opts.CABundle, "ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "CA certificates to put in the image; empty for none")
	flag.StringVar(&opts.Version, "version", "dev", "org.opencontainers.image.version")
	flag.StringVar(&opts.Revision, "revision", "unknown", "org.opencontainers.image.revision")
	flag.StringVar(&opts.Source, "source", "https://github.com/falco-am-bridge/falco-am-bridge", "org.opencontainers.image.source")
	created := flag.String("created", "", "creation time, RFC 3339 (default: the Unix epoch, for reproducible images)")
	flag.Parse()
	if *created != "" {
		t, err := time.Parse(time.RFC3339, *created)
		if err != nil {
			fatal(fmt.Errorf("-created: %w", err))
		}
		opts.Created = t.UTC()
	} else {
		opts.Created = time.Unix(0, 0).UTC()
	}
	idx, err := Build(opts)
	if err != nil {
		fatal(err)
	}
	if err := WriteArchive(*out, idx); err != nil {
		fatal(err)
	}
	d, _ := idx.Digest()
	fmt.Printf("wrote %s: index %s, %d platforms\n", *out, d, len(opts.Binaries))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "image:", err)
	os.Exit(1)
}

// Build returns the multi-arch index of the images of opts.Binaries.
func Build(opts Options) (v1.ImageIndex, error) {
	if len(opts.Binaries) == 0 {
		return nil, errors.New("no -binary given")
	}
	var caBundle []byte
	if opts.CABundle != "" {
		b, err := os.ReadFile(opts.CABundle)
		if err != nil {
			return nil, fmt.Errorf("-ca-bundle: %w", err)
		}
		caBundle = b
	}
	platforms := make([]string, 0, len(opts.Binaries))
	for p := range opts.Binaries {
		platforms = append(platforms, p)
	}
	sort.Strings(platforms)

	labels := map[string]string{
		"org.opencontainers.image.title":       "falco-am-bridge",
		"org.opencontainers.image.description": "Falco alerts in, Prometheus Alertmanager alerts out",
		"org.opencontainers.image.source":      opts.Source,
		"org.opencontainers.image.url":         opts.Source,
		"org.opencontainers.image.version":     opts.Version,
		"org.opencontainers.image.revision":    opts.Revision,
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.created":     opts.Created.Format(time.RFC3339),
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var adds []mutate.IndexAddendum
	for _, p := range platforms {
		osName, arch, _ := strings.Cut(p, "/")
		bin, err := os.ReadFile(opts.Binaries[p])
		if err != nil {
			return nil, fmt.Errorf("-binary %s: %w", p, err)
		}
		layerTar, err := rootFS(bin, caBundle, opts.Created)
		if err != nil {
			return nil, err
		}
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(layerTar)), nil
		}, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return nil, err
		}
		img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
		img, err = mutate.Append(img, mutate.Addendum{
			Layer: layer,
			History: v1.History{
				Created:   v1.Time{Time: opts.Created},
				CreatedBy: "hack/image: falco-am-bridge " + opts.Version,
				Comment:   "static binary, passwd, group, CA certificates",
			},
		})
		if err != nil {
			return nil, err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = osName, arch
		if arch == "arm64" {
			cf.Variant = "v8"
		}
		cf.Created = v1.Time{Time: opts.Created}
		cf.Author = "falco-am-bridge"
		cf.Config = v1.Config{
			Entrypoint:   []string{Entrypoint},
			User:         User,
			ExposedPorts: map[string]struct{}{Port: {}},
			WorkingDir:   "/",
			Env: []string{
				"PATH=/bin",
				"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
			},
			Labels: labels,
		}
		img, err = mutate.ConfigFile(img, cf)
		if err != nil {
			return nil, err
		}
		img = mutate.Annotations(img, labels).(v1.Image)
		adds = append(adds, mutate.IndexAddendum{
			Add: img,
			Descriptor: v1.Descriptor{
				MediaType: types.OCIManifestSchema1,
				Platform:  &v1.Platform{OS: osName, Architecture: arch, Variant: cf.Variant},
			},
		})
	}
	idx = mutate.AppendManifests(idx, adds...)
	return mutate.Annotations(idx, labels).(v1.ImageIndex), nil
}

// rootFS is the tar of the image's only layer.
func rootFS(bin, caBundle []byte, mtime time.Time) ([]byte, error) {
	const nonroot = 65532
	type entry struct {
		name     string
		mode     int64
		uid      int
		body     []byte
		typeflag byte
	}
	entries := []entry{
		{name: "bin/", mode: 0o755, typeflag: tar.TypeDir},
		{name: "bin/falco-am-bridge", mode: 0o755, body: bin},
		{name: "etc/", mode: 0o755, typeflag: tar.TypeDir},
		{name: "etc/group", mode: 0o644, body: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{name: "etc/passwd", mode: 0o644, body: []byte(
			"root:x:0:0:root:/root:/sbin/nologin\n" +
				"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{name: "home/", mode: 0o755, typeflag: tar.TypeDir},
		{name: "home/nonroot/", mode: 0o700, uid: nonroot, typeflag: tar.TypeDir},
		{name: "tmp/", mode: 0o1777, typeflag: tar.TypeDir},
		{name: "var/", mode: 0o755, typeflag: tar.TypeDir},
		{name: "var/lib/", mode: 0o755, typeflag: tar.TypeDir},
		{name: strings.TrimPrefix(StorageDir, "/") + "/", mode: 0o700, uid: nonroot, typeflag: tar.TypeDir},
	}
	if caBundle != nil {
		entries = append(entries,
			entry{name: "etc/ssl/", mode: 0o755, typeflag: tar.TypeDir},
			entry{name: "etc/ssl/certs/", mode: 0o755, typeflag: tar.TypeDir},
			entry{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, body: caBundle})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.uid,
			ModTime: mtime, Format: tar.FormatPAX, Typeflag: e.typeflag,
		}
		if e.typeflag == 0 {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteArchive writes idx as an OCI layout and packs it into the tar at
// path, entries sorted and timeless so that equal images give equal files.
func WriteArchive(path string, idx v1.ImageIndex) error {
	dir, err := os.MkdirTemp("", "falco-am-bridge-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// index.json holds one entry, the multi-arch index, as docker buildx
	// writes it: tools then pick the platform from that index.
	l, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("write OCI layout: %w", err)
	}
	if err := l.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": RefName,
	})); err != nil {
		return fmt.Errorf("write OCI layout: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Typeflag: tar.TypeReg, Size: info.Size(), Format: tar.FormatPAX}
		if d.IsDir() {
			h = &tar.Header{Name: filepath.ToSlash(rel) + "/", Mode: 0o755, Typeflag: tar.TypeDir, Format: tar.FormatPAX}
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
