// Package yamlcheck has no code. Its test reads every YAML file the project
// ships with a YAML 1.1 reader (PyYAML) and a YAML 1.2 one (yaml.v3), so
// that no unquoted value means one thing to Kubernetes, Helm or
// Alertmanager (YAML 1.1 readers all) and another to other tools.
package yamlcheck
