// Package alertmanager has no code. The folder ships the Alertmanager
// configuration that routes the bridge's alerts to Slack and PagerDuty
// (alertmanager.yml and templates/), and its tests check that configuration
// with amtool and a real Alertmanager so it cannot rot.
package alertmanager
