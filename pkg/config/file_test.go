package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadFileLimit: a file of the limit is read; one byte more, or a file
// without end (/dev/zero, or a link to it), is refused at once with an
// error naming the setting, the file and the limit.
func TestReadFileLimit(t *testing.T) {
	dir := t.TempDir()
	exact := filepath.Join(dir, "exact")
	over := filepath.Join(dir, "over")
	link := filepath.Join(dir, "link")
	if err := os.WriteFile(exact, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(over, make([]byte, 4097), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", link); err != nil {
		t.Fatal(err)
	}
	if data, err := ReadFile("mapping.file", exact, 4096); err != nil || len(data) != 4096 {
		t.Fatalf("a file of the limit: %d bytes, %v", len(data), err)
	}
	for path, want := range map[string]string{
		over:        "mapping.file: " + over + ": larger than 4 KiB",
		link:        "mapping.file: " + link + ": larger than 4 KiB",
		"/dev/zero": "mapping.file: /dev/zero: larger than 4 KiB",
	} {
		if _, err := ReadFile("mapping.file", path, 4096); err == nil || err.Error() != want {
			t.Errorf("%s: error %v, want %q", path, err, want)
		}
	}
	if _, err := ReadFile("mapping.file", filepath.Join(dir, "none"), 4096); err == nil || !strings.HasPrefix(err.Error(), "mapping.file: open ") {
		t.Errorf("missing file: error %v", err)
	}
}

// TestConfigFileWithoutEnd: --config.file=/dev/zero fails to load, and
// says why.
func TestConfigFileWithoutEnd(t *testing.T) {
	link := filepath.Join(t.TempDir(), "bridge.yaml")
	if err := os.Symlink("/dev/zero", link); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"/dev/zero", link} {
		_, err := load(t, "--config.file="+f)
		if want := "config file: " + f + ": larger than 1 MiB"; err == nil || err.Error() != want {
			t.Errorf("error %v, want %q", err, want)
		}
	}
}
