// Package k8scheck checks, without a cluster, what users deploy the bridge
// with: the Helm chart and the kustomize overlays (every object rendered is
// strict-decoded into its real Go type, then cross-checked), the alerting
// rules (promtool) and the Grafana dashboard (its queries name only metrics
// the bridge exports). Its tests do the work; `make test-deploy` runs them
// with helm, kustomize, promtool, amtool and the bridge installed.
//
// It is a module of its own so that k8s.io/api, the Prometheus Operator's
// API types and Prometheus's PromQL parser stay out of the bridge's go.mod.
package k8scheck

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	monitoringv1alpha1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Object is one rendered object, decoded into its Go type (a pointer such
// as *appsv1.Deployment).
type Object struct {
	Kind      string
	Name      string
	Namespace string
	Value     any
}

func (o Object) String() string { return o.Kind + "/" + o.Name }

// newObject returns a zero value of the Go type of apiVersion and kind.
func newObject(apiVersion, kind string) (any, bool) {
	switch apiVersion + " " + kind {
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1 Secret":
		return &corev1.Secret{}, true
	case "v1 Service":
		return &corev1.Service{}, true
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, true
	case "v1 PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}, true
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, true
	case "apps/v1 StatefulSet":
		return &appsv1.StatefulSet{}, true
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "monitoring.coreos.com/v1 Alertmanager":
		return &monitoringv1.Alertmanager{}, true
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}, true
	case "monitoring.coreos.com/v1 PrometheusRule":
		return &monitoringv1.PrometheusRule{}, true
	case "monitoring.coreos.com/v1alpha1 AlertmanagerConfig":
		return &monitoringv1alpha1.AlertmanagerConfig{}, true
	}
	return nil, false
}

// Decode splits a multi-document YAML stream and decodes every document
// strictly: an unknown kind, an unknown or misspelt field, a duplicate key
// or a value of the wrong type is an error naming the document.
func Decode(stream []byte) ([]Object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	var objs []Object
	var errs []error
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		var head struct {
			metav1.TypeMeta `json:",inline"`
			Metadata        metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w", i, err))
			continue
		}
		if head.Kind == "" && head.APIVersion == "" {
			continue // an empty document (comments only)
		}
		what := fmt.Sprintf("document %d (%s %s/%s)", i, head.APIVersion, head.Kind, head.Metadata.Name)
		v, ok := newObject(head.APIVersion, head.Kind)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: no Go type known for this kind", what))
			continue
		}
		if err := yaml.UnmarshalStrict(doc, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
			continue
		}
		objs = append(objs, Object{Kind: head.Kind, Name: head.Metadata.Name, Namespace: head.Metadata.Namespace, Value: v})
	}
	return objs, errors.Join(errs...)
}
