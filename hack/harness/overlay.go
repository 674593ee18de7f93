package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"
)

// AlertmanagerOverlay says how WriteAlertmanagerOverlay changes an
// Alertmanager configuration so it can run in a test. Zero fields leave the
// configuration as it is.
type AlertmanagerOverlay struct {
	// GroupWait, GroupInterval and RepeatInterval are set on the root route
	// and replace them on every child route that sets its own.
	GroupWait, GroupInterval, RepeatInterval time.Duration
	// SlackAPIURL is written to the file slack-api-url, which every
	// slack_configs entry then reads (api_url_file; api_url is removed).
	SlackAPIURL string
	// PagerDutyRoutingKey is written to the file pagerduty-routing-key, which
	// every pagerduty_configs entry then reads (routing_key_file; routing_key
	// is removed).
	PagerDutyRoutingKey string
	// PagerDutyURL replaces the url of every pagerduty_configs entry.
	PagerDutyURL string
}

// WriteAlertmanagerOverlay reads the Alertmanager configuration src, applies
// o, and writes the result as alertmanager.yml in dir, next to the secret
// files it writes. Relative template paths are made absolute against src's
// directory, so the shipped templates are used. It returns the new file's path.
func WriteAlertmanagerOverlay(src, dir string, o AlertmanagerOverlay) (string, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return "", fmt.Errorf("parsing %s: %w", src, err)
	}
	srcDir, err := filepath.Abs(filepath.Dir(src))
	if err != nil {
		return "", err
	}

	if templates, ok := cfg["templates"].([]any); ok {
		for i, tp := range templates {
			if s, ok := tp.(string); ok && !filepath.IsAbs(s) {
				templates[i] = filepath.Join(srcDir, s)
			}
		}
	}

	root, ok := cfg["route"].(map[string]any)
	if !ok {
		return "", fmt.Errorf("%s: no route", src)
	}
	setTimings(root, o, true)

	slackFile := filepath.Join(dir, "slack-api-url")
	pagerDutyFile := filepath.Join(dir, "pagerduty-routing-key")
	receivers, _ := cfg["receivers"].([]any)
	for _, r := range receivers {
		receiver, _ := r.(map[string]any)
		for _, c := range maps(receiver["slack_configs"]) {
			if o.SlackAPIURL != "" {
				delete(c, "api_url")
				c["api_url_file"] = slackFile
			}
		}
		for _, c := range maps(receiver["pagerduty_configs"]) {
			if o.PagerDutyRoutingKey != "" {
				delete(c, "routing_key")
				c["routing_key_file"] = pagerDutyFile
			}
			if o.PagerDutyURL != "" {
				c["url"] = o.PagerDutyURL
			}
		}
	}

	if o.SlackAPIURL != "" {
		if err := os.WriteFile(slackFile, []byte(o.SlackAPIURL+"\n"), 0o600); err != nil {
			return "", err
		}
	}
	if o.PagerDutyRoutingKey != "" {
		if err := os.WriteFile(pagerDutyFile, []byte(o.PagerDutyRoutingKey+"\n"), 0o600); err != nil {
			return "", err
		}
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	dst := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(dst, out, 0o600); err != nil {
		return "", err
	}
	return dst, nil
}

func setTimings(route map[string]any, o AlertmanagerOverlay, root bool) {
	for key, d := range map[string]time.Duration{
		"group_wait":      o.GroupWait,
		"group_interval":  o.GroupInterval,
		"repeat_interval": o.RepeatInterval,
	} {
		if _, set := route[key]; d > 0 && (root || set) {
			route[key] = formatDuration(d)
		}
	}
	for _, child := range maps(route["routes"]) {
		setTimings(child, o, false)
	}
}

// maps returns the mappings in a YAML sequence.
func maps(v any) []map[string]any {
	list, _ := v.([]any)
	var out []map[string]any
	for _, item := range list {
		if m, ok := item.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// formatDuration writes d in Prometheus's duration syntax, which has no
// fractions: whole hours, minutes, seconds or else milliseconds.
func formatDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	default:
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
}
