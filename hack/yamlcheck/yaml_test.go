package yamlcheck

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/falco-am-bridge/falco-am-bridge/hack/harness"
)

const root = "../.."

// shippedYAML lists the YAML files of the project, by path from the root:
// all but test fixtures (testdata) and Helm templates, which are YAML
// only once rendered.
func shippedYAML(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			switch d.Name() {
			case ".git", "bin", "testdata", "node_modules":
				return filepath.SkipDir
			case "templates":
				if _, err := os.Stat(filepath.Join(filepath.Dir(path), "Chart.yaml")); err == nil {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if strings.HasSuffix(rel, ".yaml") || strings.HasSuffix(rel, ".yml") {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// yamlBlock is a fenced YAML block of a Markdown file.
var yamlBlock = regexp.MustCompile("(?ms)^```ya?ml\n(.*?)^```")

// TestShippedYAMLReadsTheSameInYAML11And12: every YAML file the project
// ships, and every YAML block of its Markdown, means the same to PyYAML's
// safe_load (YAML 1.1) as to yaml.v3 (YAML 1.2), document by document.
func TestShippedYAMLReadsTheSameInYAML11And12(t *testing.T) {
	python := harness.Binary(t, "PYTHON_BIN")
	files := shippedYAML(t)
	if len(files) == 0 {
		t.Fatal("no YAML file found")
	}
	found := map[string]bool{}
	for _, f := range files {
		found[filepath.ToSlash(f)] = true
	}
	for _, want := range []string{
		"alertmanager/alertmanager.yml", "mapping/default.yaml",
		"examples/helm/falco-am-bridge/Chart.yaml", "examples/helm/falco-am-bridge/values.yaml",
		"examples/kubernetes/operator/alertmanagerconfig.yaml",
	} {
		if !found[want] {
			t.Errorf("%s is not among the YAML files found", want)
		}
	}

	type source struct {
		name string
		data []byte
	}
	var sources []source
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, source{f, data})
	}
	for _, doc := range []string{"README.md"} {
		data, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range yamlBlock.FindAllSubmatchIndex(data, -1) {
			line := bytes.Count(data[:m[2]], []byte("\n")) + 1
			sources = append(sources, source{doc + ":" + strconv.Itoa(line), data[m[2]:m[3]]})
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, s := range sources {
		t.Run(s.name, func(t *testing.T) {
			diffs, err := harness.YAMLDifferences(ctx, python, s.data)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range diffs {
				t.Errorf("%s: %s (quote the value)", s.name, d)
			}
		})
	}
}
