package capture

import (
	"encoding/json"
	"fmt"
	"strings"
)

// SlackMessage is the part of a Slack webhook body that Alertmanager fills
// from a slack_configs entry.
type SlackMessage struct {
	Channel     string `json:"channel"`
	Attachments []struct {
		Title string `json:"title"`
		Text  string `json:"text"`
		Color string `json:"color"`
	} `json:"attachments"`
}

// PagerDutyEvent is a PagerDuty Events API v2 body as Alertmanager sends it.
type PagerDutyEvent struct {
	RoutingKey  string `json:"routing_key"`
	DedupKey    string `json:"dedup_key"`
	EventAction string `json:"event_action"`
	Payload     struct {
		Summary       string         `json:"summary"`
		Source        string         `json:"source"`
		Severity      string         `json:"severity"`
		Class         string         `json:"class"`
		Component     string         `json:"component"`
		Group         string         `json:"group"`
		CustomDetails map[string]any `json:"custom_details"`
	} `json:"payload"`
	Client    string `json:"client"`
	ClientURL string `json:"client_url"`
	Links     []struct {
		Href string `json:"href"`
		Text string `json:"text"`
	} `json:"links"`
}

// Slack decodes a Slack record.
func (r Record) Slack() (SlackMessage, error) {
	var m SlackMessage
	if err := json.Unmarshal(r.Body, &m); err != nil {
		return m, fmt.Errorf("slack body %s: %w", r.Body, err)
	}
	if len(m.Attachments) == 0 {
		return m, fmt.Errorf("slack body without attachments: %s", r.Body)
	}
	return m, nil
}

// PagerDuty decodes a PagerDuty record.
func (r Record) PagerDuty() (PagerDutyEvent, error) {
	var ev PagerDutyEvent
	if err := json.Unmarshal(r.Body, &ev); err != nil {
		return ev, fmt.Errorf("pagerduty body %s: %w", r.Body, err)
	}
	return ev, nil
}

// Title and Text of the first attachment.
func (m SlackMessage) Title() string { return m.Attachments[0].Title }

// Text of the first attachment.
func (m SlackMessage) Text() string { return m.Attachments[0].Text }

// Detail returns a custom_details value as a string. The shipped templates
// JSON-quote every value; Alertmanager 0.30 to 0.33 send that text as it
// is, later versions decode it, so both are read.
func (ev PagerDutyEvent) Detail(key string) (string, bool) {
	v, ok := ev.Payload.CustomDetails[key]
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	if !ok {
		b, _ := json.Marshal(v)
		return string(b), true
	}
	var unquoted string
	if strings.HasPrefix(s, `"`) && json.Unmarshal([]byte(s), &unquoted) == nil {
		return unquoted, true
	}
	return s, true
}
