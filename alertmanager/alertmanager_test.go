package alertmanager_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/falco-am-bridge/falco-am-bridge/hack/harness"
)

const shippedConfig = "alertmanager.yml"

func TestCheckConfig(t *testing.T) {
	amtool := harness.Binary(t, "AMTOOL_BIN")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, amtool, "check-config", shippedConfig).CombinedOutput()
	if err != nil {
		t.Fatalf("amtool check-config %s: %v\n%s", shippedConfig, err, out)
	}
	// amtool parses the templates but does not say whether the glob found any.
	if !strings.Contains(string(out), " - 1 templates\n  SUCCESS") {
		t.Errorf("amtool check-config did not load the templates:\n%s", out)
	}
}

// shippedYAML is the shipped configuration, parsed without Alertmanager's types.
type shippedYAML struct {
	Templates []string `yaml:"templates"`
	Receivers []struct {
		Name         string `yaml:"name"`
		SlackConfigs []struct {
			APIURLFile string `yaml:"api_url_file"`
		} `yaml:"slack_configs"`
		PagerDutyConfigs []struct {
			RoutingKeyFile string `yaml:"routing_key_file"`
		} `yaml:"pagerduty_configs"`
	} `yaml:"receivers"`
}

func loadShipped(t *testing.T) shippedYAML {
	t.Helper()
	data, err := os.ReadFile(shippedConfig)
	if err != nil {
		t.Fatal(err)
	}
	var cfg shippedYAML
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Alertmanager resolves template paths against the configuration's directory.
func TestTemplateGlobsMatchFiles(t *testing.T) {
	cfg := loadShipped(t)
	if len(cfg.Templates) == 0 {
		t.Fatal("no templates configured")
	}
	for _, glob := range cfg.Templates {
		files, err := filepath.Glob(filepath.Join(filepath.Dir(shippedConfig), glob))
		if err != nil || len(files) == 0 {
			t.Errorf("templates: %q matches no file (err %v)", glob, err)
		}
	}
}

// Alertmanager opens api_url_file and routing_key_file as written, relative
// to its working directory, not to the configuration file: keep them absolute.
func TestSecretFilesAreAbsolute(t *testing.T) {
	cfg := loadShipped(t)
	var slack, pagerDuty int
	for _, r := range cfg.Receivers {
		for i, c := range r.SlackConfigs {
			slack++
			if !filepath.IsAbs(c.APIURLFile) {
				t.Errorf("receivers[%s].slack_configs[%d].api_url_file: %q is not an absolute path", r.Name, i, c.APIURLFile)
			}
		}
		for i, c := range r.PagerDutyConfigs {
			pagerDuty++
			if !filepath.IsAbs(c.RoutingKeyFile) {
				t.Errorf("receivers[%s].pagerduty_configs[%d].routing_key_file: %q is not an absolute path", r.Name, i, c.RoutingKeyFile)
			}
		}
	}
	if slack == 0 || pagerDuty == 0 {
		t.Errorf("found %d Slack and %d PagerDuty configs, want at least one of each", slack, pagerDuty)
	}
}
