package k8scheck

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/falco-am-bridge/falco-am-bridge/hack/harness"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	monitoringv1alpha1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

const (
	repo      = "../.."
	chartDir  = repo + "/examples/helm/falco-am-bridge"
	rulesFile = repo + "/examples/prometheus/falco-am-bridge-rules.yml"
	namespace = "monitoring"
	release   = "falco-am-bridge"
)

// The CRDs of the Prometheus Operator, as helm sees them in a cluster
// that has them.
var operatorAPIs = []string{
	"--api-versions", "monitoring.coreos.com/v1/ServiceMonitor",
	"--api-versions", "monitoring.coreos.com/v1/PrometheusRule",
}

// want is what one rendering must hold beyond the checks every one gets.
type want struct {
	workload   string // Deployment, StatefulSet or Alertmanager holding the bridge
	replicas   int32  // at least
	pdb        bool
	monitoring bool // ServiceMonitor and PrometheusRule
	amtool     bool // an alertmanager container whose config amtool checks
	jetstream  bool // the bridge takes events from NATS JetStream
}

var helmModes = []struct {
	name string
	set  []string
	apis bool
	want want
}{
	{"default", nil, false, want{workload: "Deployment", replicas: 2, pdb: true}},
	{"operator CRDs present", nil, true, want{workload: "Deployment", replicas: 2, pdb: true, monitoring: true}},
	{"durable spool", []string{"persistence.enabled=true", "persistence.fsyncInterval=0s"}, true,
		want{workload: "StatefulSet", replicas: 2, pdb: true, monitoring: true}},
	{"TLS and bearer token from Secrets", []string{
		"web.configSecret=falco-am-bridge-web", "web.bearerTokenSecret=falco-am-bridge-token", "web.probeScheme=HTTPS",
		"serviceMonitor.tlsConfig.ca.secret.name=falco-am-bridge-web", "serviceMonitor.tlsConfig.ca.secret.key=ca.crt",
	}, true, want{workload: "Deployment", replicas: 2, pdb: true, monitoring: true}},
	{"static Alertmanagers, hard anti-affinity, no reloader", []string{
		"config.alertmanager.urls={http://alertmanager-0.alertmanager:9093,http://alertmanager-1.alertmanager:9093}",
		"podAntiAffinity=hard", "reloader.enabled=false", "replicaCount=3",
	}, false, want{workload: "Deployment", replicas: 3, pdb: true}},
}

var overlays = []struct {
	name string
	want want
}{
	{"standalone", want{workload: "Deployment", replicas: 2, pdb: true}},
	{"sidecar", want{workload: "StatefulSet", replicas: 1, amtool: true}},
	{"operator", want{workload: "Alertmanager", replicas: 2, monitoring: true}},
	{"jetstream", want{workload: "Deployment", replicas: 3, pdb: true, jetstream: true}},
}

func TestHelmChart(t *testing.T) {
	helm := harness.Binary(t, "HELM_BIN")
	for _, m := range helmModes {
		t.Run(m.name, func(t *testing.T) {
			var args []string
			for _, s := range m.set {
				args = append(args, "--set", s)
			}
			run(t, helm, append([]string{"lint", "--strict", chartDir}, args...)...)
			if m.apis {
				args = append(args, operatorAPIs...)
			}
			out := run(t, helm, append([]string{"template", release, chartDir, "--namespace", namespace}, args...)...)
			sameInYAML11(t, out)
			objs := decode(t, out)
			checkAll(t, objs, m.want)
		})
	}
}

func TestHelmValuesSchema(t *testing.T) {
	helm := harness.Binary(t, "HELM_BIN")
	for _, set := range []string{"replicas=2", "config.alertmanager.urls={ftp://am:9093}", "persistence.size=lots", "podAntiAffinity=always"} {
		cmd := exec.Command(helm, "template", release, chartDir, "--set", set)
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Errorf("helm template --set %s: want a schema error, got none:\n%.300s", set, out)
		}
	}
}

// TestHelmNotes: the Falco URL the chart prints is the one of the Falco
// example values. helm renders NOTES.txt only when installing, which needs
// a cluster, so the test renders it through a copy of the chart in which a
// ConfigMap holds the notes.
func TestHelmNotes(t *testing.T) {
	helm := harness.Binary(t, "HELM_BIN")
	dir := filepath.Join(t.TempDir(), "chart")
	if err := os.CopyFS(dir, os.DirFS(chartDir)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "templates/NOTES.txt"), filepath.Join(dir, "files/notes.txt")); err != nil {
		t.Fatal(err)
	}
	notes := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ tpl (.Files.Get \"files/notes.txt\") . | toJson }}\n"
	if err := os.WriteFile(filepath.Join(dir, "templates/notes.yaml"), []byte(notes), 0o644); err != nil {
		t.Fatal(err)
	}
	out := run(t, helm, "template", release, dir, "--namespace", namespace, "--show-only", "templates/notes.yaml")
	text := configMapKey(t, decode(t, out), "notes")
	t.Logf("NOTES:\n%s", text)
	u := falcoURL(t)
	if !strings.Contains(text, "url: "+u.String()+"\n") {
		t.Errorf("NOTES do not print http_output.url %s", u)
	}
	if !strings.Contains(text, "dnssrv+http://_web._tcp.alertmanager-operated.monitoring.svc") {
		t.Error("NOTES do not list the Alertmanagers")
	}
}

func TestKustomizeOverlays(t *testing.T) {
	kustomize := harness.Binary(t, "KUSTOMIZE_BIN")
	chart := chartBridge(t)
	for _, o := range overlays {
		t.Run(o.name, func(t *testing.T) {
			out := run(t, kustomize, "build", repo+"/examples/kubernetes/"+o.name)
			sameInYAML11(t, out)
			objs := decode(t, out)
			checkAll(t, objs, o.want)
			sameAsChart(t, chart, objs)
		})
	}
}

// chartBridge is the bridge container of the chart with default values.
func chartBridge(t *testing.T) corev1.Container {
	t.Helper()
	helm := harness.Binary(t, "HELM_BIN")
	d := one[*appsv1.Deployment](t, decode(t, run(t, helm, "template", release, chartDir, "--namespace", namespace)))
	return d.Spec.Template.Spec.Containers[0]
}

// sameAsChart: the bridge container of a rendering has the chart's
// probes (ports compared by number), securityContext and resources.
func sameAsChart(t *testing.T, chart corev1.Container, objs []Object) {
	t.Helper()
	norm := func(c corev1.Container) []byte {
		c = *c.DeepCopy()
		for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
			if p != nil && p.HTTPGet != nil {
				p.HTTPGet.Port = intstr.FromInt32(2802)
			}
		}
		b, _ := json.MarshalIndent(struct {
			Readiness, Liveness *corev1.Probe
			Security            *corev1.SecurityContext
			Resources           corev1.ResourceRequirements
		}{c.ReadinessProbe, c.LivenessProbe, c.SecurityContext, c.Resources}, "", " ")
		return b
	}
	want := norm(chart)
	var found bool
	for _, p := range podsOf(t, objs) {
		for _, c := range p.spec.Containers {
			if c.Name != "falco-am-bridge" {
				continue
			}
			found = true
			if got := norm(c); !bytes.Equal(got, want) {
				t.Errorf("%s: the bridge's probes, securityContext or resources differ from the chart's:\n%s\nchart:\n%s", p.owner, got, want)
			}
		}
	}
	if !found {
		t.Error("no falco-am-bridge container")
	}
}

// TestStandaloneIsTheChartDefault: the standalone overlay and the chart
// with its default values run the same pods behind the same Service.
func TestStandaloneIsTheChartDefault(t *testing.T) {
	helm := harness.Binary(t, "HELM_BIN")
	kustomize := harness.Binary(t, "KUSTOMIZE_BIN")
	chart := decode(t, run(t, helm, "template", release, chartDir, "--namespace", namespace))
	overlay := decode(t, run(t, kustomize, "build", repo+"/examples/kubernetes/standalone"))
	hash := regexp.MustCompile(`-config-[a-z0-9]{10}"`)
	same := func(what string, a, b any) {
		t.Helper()
		ja, _ := json.MarshalIndent(a, "", " ")
		jb, _ := json.MarshalIndent(b, "", " ")
		ja, jb = hash.ReplaceAll(ja, []byte(`-config"`)), hash.ReplaceAll(jb, []byte(`-config"`))
		if !bytes.Equal(ja, jb) {
			t.Errorf("%s differs between the chart's default and the standalone overlay:\nchart:\n%s\noverlay:\n%s", what, ja, jb)
		}
	}
	cd, od := one[*appsv1.Deployment](t, chart), one[*appsv1.Deployment](t, overlay)
	same("Deployment pod spec", cd.Spec.Template.Spec, od.Spec.Template.Spec)
	same("Deployment replicas and selector", []any{cd.Spec.Replicas, cd.Spec.Selector}, []any{od.Spec.Replicas, od.Spec.Selector})
	cs, ovs := one[*corev1.Service](t, chart), one[*corev1.Service](t, overlay)
	same("Service spec", cs.Spec, ovs.Spec)
	for _, key := range []string{"config.yaml", "mapping.yaml"} {
		var a, b any
		if err := yaml.Unmarshal([]byte(configMapKey(t, chart, key)), &a); err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal([]byte(configMapKey(t, overlay, key)), &b); err != nil {
			t.Fatal(err)
		}
		same(key, a, b)
	}
}

// checkAll runs every cross-check on one rendering.
func checkAll(t *testing.T, objs []Object, w want) {
	t.Helper()
	pods := podsOf(t, objs)
	var bridges int
	for _, p := range pods {
		if p.owner.Kind != w.workload {
			continue
		}
		for _, c := range p.spec.Containers {
			if c.Name == "falco-am-bridge" {
				bridges++
				checkBridge(t, p, c)
				checkMountedFiles(t, objs, p, c)
			}
		}
		if p.replicas < w.replicas {
			t.Errorf("%s: %d replicas, want at least %d", p.owner, p.replicas, w.replicas)
		}
	}
	if bridges != 1 {
		t.Fatalf("want one %s with a falco-am-bridge container, found %d", w.workload, bridges)
	}
	for _, p := range pods {
		for _, c := range append(slices.Clone(p.spec.InitContainers), p.spec.Containers...) {
			checkSecurity(t, p, c)
		}
		checkVolumes(t, objs, p)
		checkAffinity(t, p)
	}
	checkServices(t, objs, pods)
	checkFalcoURL(t, objs)
	checkPDB(t, objs, pods, w.pdb)
	checkMonitoring(t, objs, w.monitoring)
	checkAlertmanagerConfig(t, objs)
	if w.amtool {
		checkAlertmanagerYAML(t, objs, pods)
	}
	if w.jetstream {
		checkJetStream(t, objs, pods)
	}
}

// checkJetStream: the bridge's configuration names a NATS source whose
// credentials file is in a Secret volume the container mounts.
func checkJetStream(t *testing.T, objs []Object, pods []pod) {
	t.Helper()
	for _, p := range pods {
		for _, c := range p.spec.Containers {
			if c.Name != "falco-am-bridge" {
				continue
			}
			root := materialize(t, objs, p, c)
			data, err := os.ReadFile(filepath.Join(root, flagValue(c.Args, "--config.file")))
			if err != nil {
				t.Fatalf("%s: %v", p.owner, err)
			}
			var cfg struct {
				Source struct {
					NATS struct {
						URLs            []string `json:"urls"`
						Stream          string   `json:"stream"`
						Consumer        string   `json:"consumer"`
						CredentialsFile string   `json:"credentials_file"`
					} `json:"nats"`
				} `json:"source"`
			}
			if err := yaml.Unmarshal(data, &cfg); err != nil {
				t.Fatal(err)
			}
			n := cfg.Source.NATS
			if len(n.URLs) < 3 || n.Stream == "" || n.Consumer == "" {
				t.Errorf("%s: source.nats: want every node of a three-node cluster, a stream and a consumer, got %+v", p.owner, n)
			}
			if n.CredentialsFile == "" {
				continue
			}
			var mounted bool
			for _, m := range c.VolumeMounts {
				i := slices.IndexFunc(p.spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
				if i >= 0 && p.spec.Volumes[i].Secret != nil && filepath.Dir(n.CredentialsFile) == filepath.Clean(m.MountPath) {
					mounted = true
				}
			}
			if !mounted {
				t.Errorf("%s: source.nats.credentials_file %s is in no Secret volume the bridge mounts", p.owner, n.CredentialsFile)
			}
		}
	}
}

// pod is the pod template of a workload, wherever it lives.
type pod struct {
	owner     Object
	namespace string
	labels    map[string]string
	spec      corev1.PodSpec
	replicas  int32
}

func podsOf(t *testing.T, objs []Object) []pod {
	t.Helper()
	var pods []pod
	for _, o := range objs {
		switch v := o.Value.(type) {
		case *appsv1.Deployment:
			pods = append(pods, pod{o, ns(o), v.Spec.Template.Labels, v.Spec.Template.Spec, deref(v.Spec.Replicas, 1)})
			checkSelector(t, o, v.Spec.Selector.MatchLabels, v.Spec.Template.Labels)
		case *appsv1.StatefulSet:
			pods = append(pods, pod{o, ns(o), v.Spec.Template.Labels, v.Spec.Template.Spec, deref(v.Spec.Replicas, 1)})
			checkSelector(t, o, v.Spec.Selector.MatchLabels, v.Spec.Template.Labels)
			if !slices.ContainsFunc(objs, func(s Object) bool { return s.Kind == "Service" && s.Name == v.Spec.ServiceName }) {
				t.Errorf("%s: serviceName %q is not a Service rendered with it", o, v.Spec.ServiceName)
			}
			for _, pvc := range v.Spec.VolumeClaimTemplates {
				v.Spec.Template.Spec.Volumes = append(v.Spec.Template.Spec.Volumes, corev1.Volume{
					Name: pvc.Name, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: pvc.Name}},
				})
			}
			pods[len(pods)-1].spec = v.Spec.Template.Spec
		case *monitoringv1.Alertmanager:
			// The labels the operator puts on the pods of an Alertmanager,
			// and the containers and volumes it merges into them.
			labels := map[string]string{
				"alertmanager":                 o.Name,
				"app.kubernetes.io/name":       "alertmanager",
				"app.kubernetes.io/instance":   o.Name,
				"app.kubernetes.io/managed-by": "prometheus-operator",
			}
			if v.Spec.PodMetadata != nil {
				for k, val := range v.Spec.PodMetadata.Labels {
					labels[k] = val
				}
			}
			spec := corev1.PodSpec{Containers: v.Spec.Containers, InitContainers: v.Spec.InitContainers, Volumes: v.Spec.Volumes}
			if v.Spec.SecurityContext != nil {
				spec.SecurityContext = v.Spec.SecurityContext
			}
			pods = append(pods, pod{o, ns(o), labels, spec, deref(v.Spec.Replicas, 1)})
		}
	}
	return pods
}

func checkSelector(t *testing.T, o Object, selector, labels map[string]string) {
	t.Helper()
	if len(selector) == 0 || !selects(selector, labels) {
		t.Errorf("%s: selector %v does not select its own pods %v", o, selector, labels)
	}
}

func checkBridge(t *testing.T, p pod, c corev1.Container) {
	t.Helper()
	port := containerPort(c, 2802)
	if port == nil {
		t.Fatalf("%s: container %s has no containerPort 2802", p.owner, c.Name)
	}
	if listen := flagValue(c.Args, "--web.listen-address"); listen != "" && !strings.HasSuffix(listen, ":2802") {
		t.Errorf("%s: --web.listen-address=%s, but the port declared is 2802", p.owner, listen)
	}
	for _, probe := range []struct {
		what  string
		probe *corev1.Probe
		path  string
	}{{"readinessProbe", c.ReadinessProbe, "/-/ready"}, {"livenessProbe", c.LivenessProbe, "/-/healthy"}} {
		if probe.probe == nil || probe.probe.HTTPGet == nil {
			t.Errorf("%s: %s: no httpGet %s", p.owner, probe.what, probe.path)
			continue
		}
		g := probe.probe.HTTPGet
		if g.Path != probe.path {
			t.Errorf("%s: %s path %q, want %q", p.owner, probe.what, g.Path, probe.path)
		}
		if g.Port.StrVal != "" && g.Port.StrVal != port.Name || g.Port.StrVal == "" && g.Port.IntVal != 2802 {
			t.Errorf("%s: %s port %s is not the bridge's port (%s, 2802)", p.owner, probe.what, g.Port.String(), port.Name)
		}
	}
	r := c.Resources
	if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() {
		t.Errorf("%s: set cpu and memory requests and a memory limit, got %v", p.owner, r)
	}
	if len(flagValues(c.Args, "--alertmanager.url")) == 0 && flagValue(c.Args, "--config.file") == "" {
		t.Errorf("%s: the bridge is told no Alertmanager (neither --alertmanager.url nor --config.file)", p.owner)
	}
}

func checkSecurity(t *testing.T, p pod, c corev1.Container) {
	t.Helper()
	sc, psc := c.SecurityContext, p.spec.SecurityContext
	nonRoot := sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot ||
		(sc == nil || sc.RunAsNonRoot == nil) && psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot
	if !nonRoot {
		t.Errorf("%s: container %s: runAsNonRoot is not true", p.owner, c.Name)
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: container %s: readOnlyRootFilesystem is not true", p.owner, c.Name)
	}
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: container %s: allowPrivilegeEscalation is not false", p.owner, c.Name)
	}
	if sc == nil || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		t.Errorf("%s: container %s: capabilities must drop ALL and add none", p.owner, c.Name)
	}
}

// checkVolumes: every ConfigMap a pod mounts is rendered with it, with the
// keys the pod asks for, and every mount names a volume of the pod.
func checkVolumes(t *testing.T, objs []Object, p pod) {
	t.Helper()
	for _, v := range p.spec.Volumes {
		if v.ConfigMap == nil {
			continue
		}
		cm := findConfigMap(objs, p.namespace, v.ConfigMap.Name)
		if cm == nil {
			if v.ConfigMap.Optional == nil || !*v.ConfigMap.Optional {
				t.Errorf("%s: volume %s: ConfigMap %q is not rendered with it", p.owner, v.Name, v.ConfigMap.Name)
			}
			continue
		}
		for _, item := range v.ConfigMap.Items {
			if _, ok := cm.Data[item.Key]; !ok {
				t.Errorf("%s: volume %s: ConfigMap %s has no key %q", p.owner, v.Name, cm.Name, item.Key)
			}
		}
	}
	for _, c := range append(slices.Clone(p.spec.InitContainers), p.spec.Containers...) {
		for _, m := range c.VolumeMounts {
			if !slices.ContainsFunc(p.spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name }) {
				t.Errorf("%s: container %s mounts %q, which is not a volume of the pod", p.owner, c.Name, m.Name)
			}
		}
	}
}

func checkAffinity(t *testing.T, p pod) {
	t.Helper()
	a := p.spec.Affinity
	if a == nil || a.PodAntiAffinity == nil {
		return
	}
	terms := slices.Clone(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution)
	for _, w := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
		terms = append(terms, w.PodAffinityTerm)
	}
	for _, term := range terms {
		if term.LabelSelector == nil || !selects(term.LabelSelector.MatchLabels, p.labels) {
			t.Errorf("%s: anti-affinity selector %v does not select the pod's own labels %v", p.owner, term.LabelSelector, p.labels)
		}
	}
}

// checkServices: every Service selects pods rendered with it, and the
// ports it targets are named ports of those pods.
func checkServices(t *testing.T, objs []Object, pods []pod) {
	t.Helper()
	for _, o := range objs {
		svc, ok := o.Value.(*corev1.Service)
		if !ok {
			continue
		}
		var selected []pod
		for _, p := range pods {
			if p.namespace == ns(o) && len(svc.Spec.Selector) > 0 && selects(svc.Spec.Selector, p.labels) {
				selected = append(selected, p)
			}
		}
		if len(selected) == 0 {
			t.Errorf("%s: selector %v selects no pod rendered with it", o, svc.Spec.Selector)
			continue
		}
		for _, sp := range svc.Spec.Ports {
			for _, p := range selected {
				if !podHasPort(p, sp.TargetPort.StrVal, sp.TargetPort.IntVal) {
					t.Errorf("%s: port %s targets %s, which %s does not declare", o, sp.Name, sp.TargetPort.String(), p.owner)
				}
			}
		}
	}
}

// checkFalcoURL: Falco's example values post to a Service of this
// rendering, on a port that leads to the bridge.
func checkFalcoURL(t *testing.T, objs []Object) {
	t.Helper()
	u := falcoURL(t)
	host := strings.Split(u.Hostname(), ".")
	if len(host) < 3 || host[2] != "svc" {
		t.Fatalf("examples/helm-values.yaml: http_output.url %s is not a Service name (name.namespace.svc)", u)
	}
	for _, o := range objs {
		if svc, ok := o.Value.(*corev1.Service); ok && o.Name == host[0] && ns(o) == host[1] {
			for _, p := range svc.Spec.Ports {
				if p.Port == 2802 && u.Port() == "2802" {
					return
				}
			}
		}
	}
	t.Errorf("examples/helm-values.yaml posts to %s, but no Service %s in %s has port %s", u, host[0], host[1], u.Port())
}

func checkPDB(t *testing.T, objs []Object, pods []pod, want bool) {
	t.Helper()
	var found int
	for _, o := range objs {
		pdb, ok := o.Value.(*policyv1.PodDisruptionBudget)
		if !ok {
			continue
		}
		found++
		if pdb.Spec.MinAvailable == nil && pdb.Spec.MaxUnavailable == nil {
			t.Errorf("%s: neither minAvailable nor maxUnavailable", o)
		}
		sel := pdb.Spec.Selector.MatchLabels
		i := slices.IndexFunc(pods, func(p pod) bool { return p.namespace == ns(o) && selects(sel, p.labels) })
		if i < 0 {
			t.Errorf("%s: selector %v selects no pod rendered with it", o, sel)
			continue
		}
		// minAvailable as high as the replicas would block every drain.
		if m := pdb.Spec.MinAvailable; m != nil && m.StrVal == "" && m.IntVal >= pods[i].replicas {
			t.Errorf("%s: minAvailable %d with %d replicas lets no pod be evicted", o, m.IntVal, pods[i].replicas)
		}
	}
	if want && found == 0 {
		t.Error("no PodDisruptionBudget")
	}
}

func checkMonitoring(t *testing.T, objs []Object, want bool) {
	t.Helper()
	var monitors, rules int
	for _, o := range objs {
		switch v := o.Value.(type) {
		case *monitoringv1.ServiceMonitor:
			monitors++
			var svc *corev1.Service
			for _, s := range objs {
				if s2, ok := s.Value.(*corev1.Service); ok && ns(s) == ns(o) && selects(v.Spec.Selector.MatchLabels, s2.Labels) {
					svc = s2
				}
			}
			if svc == nil {
				t.Errorf("%s: selects no Service rendered with it", o)
				continue
			}
			for _, ep := range v.Spec.Endpoints {
				if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
					t.Errorf("%s: endpoint port %q is not a port of Service %s", o, ep.Port, svc.Name)
				}
				if ep.Path != "/metrics" {
					t.Errorf("%s: path %q, want /metrics", o, ep.Path)
				}
				if !slices.ContainsFunc(ep.RelabelConfigs, func(r monitoringv1.RelabelConfig) bool {
					return r.TargetLabel == "job" && r.Replacement != nil && *r.Replacement == "falco-am-bridge"
				}) {
					t.Errorf("%s: the rules select job=\"falco-am-bridge\", but the ServiceMonitor does not set it", o)
				}
			}
		case *monitoringv1.PrometheusRule:
			rules++
			got, _ := json.Marshal(v.Spec.Groups)
			wantGroups, _ := json.Marshal(shippedRules(t))
			if !bytes.Equal(got, wantGroups) {
				t.Errorf("%s: its groups are not those of examples/prometheus/falco-am-bridge-rules.yml:\n%s\nwant:\n%s", o, got, wantGroups)
			}
		}
	}
	if want && (monitors != 1 || rules != 1) {
		t.Errorf("want one ServiceMonitor and one PrometheusRule, got %d and %d", monitors, rules)
	}
	if !want && monitors+rules > 0 {
		t.Errorf("ServiceMonitor or PrometheusRule rendered without the operator's CRDs")
	}
}

func shippedRules(t *testing.T) []monitoringv1.RuleGroup {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []monitoringv1.RuleGroup `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	return f.Groups
}

// checkMountedFiles lays out the files the bridge container reads from
// ConfigMaps as they appear in the pod, and runs `falco-am-bridge check`
// on them: the configuration file and the mapping must be valid.
func checkMountedFiles(t *testing.T, objs []Object, p pod, c corev1.Container) {
	t.Helper()
	root := materialize(t, objs, p, c)
	mappingFile := flagValue(c.Args, "--mapping.file")
	if mappingFile == "" {
		t.Fatalf("%s: the bridge has no --mapping.file: the mapping is not in a ConfigMap", p.owner)
	}
	args := []string{"check"}
	for _, f := range []string{"--config.file", "--mapping.file"} {
		v := flagValue(c.Args, f)
		if v == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, v)); err != nil {
			t.Errorf("%s: %s=%s is in no ConfigMap the container mounts", p.owner, f, v)
			return
		}
		args = append(args, f+"="+filepath.Join(root, v))
	}
	bridge := harness.Binary(t, "BRIDGE_BIN")
	out := run(t, bridge, args...)
	t.Logf("falco-am-bridge %s: %s", strings.Join(c.Args, " "), bytes.TrimSpace(out))
}

// materialize writes the ConfigMap files container c mounts under a
// temporary root, at their paths in the container.
func materialize(t *testing.T, objs []Object, p pod, c corev1.Container) string {
	t.Helper()
	root := t.TempDir()
	for _, m := range c.VolumeMounts {
		i := slices.IndexFunc(p.spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		if i < 0 || p.spec.Volumes[i].ConfigMap == nil {
			continue
		}
		cm := findConfigMap(objs, p.namespace, p.spec.Volumes[i].ConfigMap.Name)
		if cm == nil {
			continue // reported by checkVolumes
		}
		for key, data := range cm.Data {
			dst := filepath.Join(root, m.MountPath, key)
			if m.SubPath != "" {
				if key != m.SubPath {
					continue
				}
				dst = filepath.Join(root, m.MountPath)
			}
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

// checkAlertmanagerYAML runs `amtool check-config` on the configuration
// the alertmanager container reads, with its templates where it finds them.
func checkAlertmanagerYAML(t *testing.T, objs []Object, pods []pod) {
	t.Helper()
	amtool := harness.Binary(t, "AMTOOL_BIN")
	for _, p := range pods {
		for _, c := range p.spec.Containers {
			if c.Name != "alertmanager" {
				continue
			}
			cfg := flagValue(c.Args, "--config.file")
			root := materialize(t, objs, p, c)
			out := run(t, amtool, "check-config", filepath.Join(root, cfg))
			// amtool parses the templates its globs find but does not say
			// whether they found any: look where they point.
			b, err := os.ReadFile(filepath.Join(root, cfg))
			if err != nil {
				t.Fatal(err)
			}
			var amc struct {
				Templates []string `json:"templates"`
			}
			if err := yaml.Unmarshal(b, &amc); err != nil {
				t.Fatal(err)
			}
			for _, g := range amc.Templates {
				if !filepath.IsAbs(g) {
					g = filepath.Join(filepath.Dir(filepath.Join(root, cfg)), g)
				}
				if m, _ := filepath.Glob(g); len(m) == 0 {
					t.Errorf("%s: templates glob %s finds no file in the pod", cfg, strings.TrimPrefix(g, root))
				}
			}
			t.Logf("amtool check-config %s:\n%s", cfg, out)
			return
		}
	}
	t.Error("no alertmanager container to check")
}

func checkAlertmanagerConfig(t *testing.T, objs []Object) {
	t.Helper()
	for _, o := range objs {
		amc, ok := o.Value.(*monitoringv1alpha1.AlertmanagerConfig)
		if !ok {
			continue
		}
		receivers := map[string]bool{}
		for _, r := range amc.Spec.Receivers {
			receivers[r.Name] = true
		}
		checkRoute(t, o, amc.Spec.Route, receivers)
		var am *monitoringv1.Alertmanager
		for _, a := range objs {
			if v, ok := a.Value.(*monitoringv1.Alertmanager); ok && ns(a) == ns(o) {
				am = v
			}
		}
		if am == nil {
			t.Errorf("%s: no Alertmanager rendered with it", o)
			continue
		}
		if am.Spec.AlertmanagerConfigSelector == nil || !selects(am.Spec.AlertmanagerConfigSelector.MatchLabels, amc.GetLabels()) {
			t.Errorf("%s: the Alertmanager's alertmanagerConfigSelector does not select it", o)
		}
		// The Falco routes must see alerts of every namespace and host
		// alerts without one: no namespace matcher on this config.
		if s := am.Spec.AlertmanagerConfigMatcherStrategy.Type; s != monitoringv1.OnNamespaceExceptForAlertmanagerNamespaceConfigMatcherStrategyType && s != monitoringv1.NoneConfigMatcherStrategyType {
			t.Errorf("%s: alertmanagerConfigMatcherStrategy %q adds a namespace matcher: host alerts would never match", o, s)
		}
	}
}

// checkRoute decodes the child routes of an AlertmanagerConfig, which its
// Go type keeps as raw JSON, strictly, and checks every receiver exists.
func checkRoute(t *testing.T, o Object, r *monitoringv1alpha1.Route, receivers map[string]bool) {
	t.Helper()
	if r == nil {
		t.Errorf("%s: no route", o)
		return
	}
	if r.Receiver != "" && !receivers[r.Receiver] {
		t.Errorf("%s: route receiver %q is not a receiver of it", o, r.Receiver)
	}
	for i, raw := range r.Routes {
		var child monitoringv1alpha1.Route
		if err := yaml.UnmarshalStrict(raw.Raw, &child); err != nil {
			t.Errorf("%s: routes[%d]: %v", o, i, err)
			continue
		}
		checkRoute(t, o, &child, receivers)
	}
}

// sameInYAML11: the rendered manifests mean the same to a YAML 1.1 reader
// (PyYAML; Kubernetes reads YAML 1.1 too) as to yaml.v3, so a template
// leaves no value that only quoting keeps from being a boolean or an error.
func sameInYAML11(t *testing.T, rendered []byte) {
	t.Helper()
	diffs, err := harness.YAMLDifferences(context.Background(), harness.Binary(t, "PYTHON_BIN"), rendered)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diffs {
		t.Errorf("rendered manifests: %s (quote the value)", d)
	}
}

func run(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(bin), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.Bytes()
}

func decode(t *testing.T, stream []byte) []Object {
	t.Helper()
	objs, err := Decode(stream)
	if err != nil {
		t.Fatalf("strict decode: %v", err)
	}
	if len(objs) == 0 {
		t.Fatal("nothing rendered")
	}
	kinds := make([]string, len(objs))
	for i, o := range objs {
		kinds[i] = o.String()
	}
	t.Logf("decoded strictly: %s", strings.Join(kinds, ", "))
	return objs
}

func falcoURL(t *testing.T) *url.URL {
	t.Helper()
	b, err := os.ReadFile(repo + "/examples/helm-values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Falco struct {
			JSONOutput                bool `json:"json_output"`
			JSONIncludeOutputProperty bool `json:"json_include_output_property"`
			JSONIncludeTagsProperty   bool `json:"json_include_tags_property"`
			HTTPOutput                struct {
				Enabled bool   `json:"enabled"`
				URL     string `json:"url"`
			} `json:"http_output"`
		} `json:"falco"`
	}
	if err := yaml.UnmarshalStrict(b, &v); err != nil {
		t.Fatalf("examples/helm-values.yaml: %v", err)
	}
	f := v.Falco
	if !f.JSONOutput || !f.JSONIncludeOutputProperty || !f.JSONIncludeTagsProperty || !f.HTTPOutput.Enabled {
		t.Errorf("examples/helm-values.yaml must set json_output, json_include_output_property, json_include_tags_property and http_output.enabled: %+v", f)
	}
	u, err := url.Parse(f.HTTPOutput.URL)
	if err != nil {
		t.Fatalf("examples/helm-values.yaml: http_output.url: %v", err)
	}
	return u
}

func one[T any](t *testing.T, objs []Object) T {
	t.Helper()
	var found []T
	for _, o := range objs {
		if v, ok := o.Value.(T); ok {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want one %T, got %d", zero, len(found))
	}
	return found[0]
}

func configMapKey(t *testing.T, objs []Object, key string) string {
	t.Helper()
	for _, o := range objs {
		if cm, ok := o.Value.(*corev1.ConfigMap); ok {
			if v, ok := cm.Data[key]; ok {
				return v
			}
		}
	}
	t.Fatalf("no ConfigMap has %s", key)
	return ""
}

func findConfigMap(objs []Object, namespace, name string) *corev1.ConfigMap {
	for _, o := range objs {
		if cm, ok := o.Value.(*corev1.ConfigMap); ok && o.Name == name && ns(o) == namespace {
			return cm
		}
	}
	return nil
}

func podHasPort(p pod, name string, number int32) bool {
	for _, c := range p.spec.Containers {
		for _, cp := range c.Ports {
			if name != "" && cp.Name == name || name == "" && cp.ContainerPort == number {
				return true
			}
		}
	}
	return false
}

func containerPort(c corev1.Container, number int32) *corev1.ContainerPort {
	for i := range c.Ports {
		if c.Ports[i].ContainerPort == number {
			return &c.Ports[i]
		}
	}
	return nil
}

// flagValues returns the values of --name=value arguments.
func flagValues(args []string, name string) []string {
	var vs []string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			vs = append(vs, v)
		}
	}
	return vs
}

func flagValue(args []string, name string) string {
	vs := flagValues(args, name)
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// ns is the namespace of an object; helm template leaves it to the
// release namespace.
func ns(o Object) string {
	if o.Namespace == "" {
		return namespace
	}
	return o.Namespace
}

func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func deref(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

// TestKubePrometheusStack: the values that give kube-prometheus-stack's
// Alertmanager the bridge are Alertmanager spec fields (strictly), equal to
// the operator example's, and with the objects of the kube-prometheus-stack
// overlay they pass every cross-check.
func TestKubePrometheusStack(t *testing.T) {
	kustomize := harness.Binary(t, "KUSTOMIZE_BIN")
	var values struct {
		Alertmanager struct {
			AlertmanagerSpec monitoringv1.AlertmanagerSpec `json:"alertmanagerSpec"`
		} `json:"alertmanager"`
	}
	readStrict(t, repo+"/examples/kubernetes/kube-prometheus-stack/values.yaml", &values)
	spec := values.Alertmanager.AlertmanagerSpec

	operator := one[*monitoringv1.Alertmanager](t, decode(t, run(t, kustomize, "build", repo+"/examples/kubernetes/operator")))
	for _, f := range []struct {
		name        string
		got, wanted any
	}{
		{"podMetadata", spec.PodMetadata, operator.Spec.PodMetadata},
		{"alertmanagerConfigSelector", spec.AlertmanagerConfigSelector, operator.Spec.AlertmanagerConfigSelector},
		{"alertmanagerConfigMatcherStrategy", spec.AlertmanagerConfigMatcherStrategy, operator.Spec.AlertmanagerConfigMatcherStrategy},
		{"securityContext", spec.SecurityContext, operator.Spec.SecurityContext},
		{"volumes", spec.Volumes, operator.Spec.Volumes},
		{"containers", spec.Containers, operator.Spec.Containers},
	} {
		got, _ := json.Marshal(f.got)
		wanted, _ := json.Marshal(f.wanted)
		if !bytes.Equal(got, wanted) {
			t.Errorf("alertmanagerSpec.%s differs from the operator example's:\n%s\nwant:\n%s", f.name, got, wanted)
		}
	}

	objs := decode(t, run(t, kustomize, "build", repo+"/examples/kubernetes/kube-prometheus-stack"))
	if slices.ContainsFunc(objs, func(o Object) bool { return o.Kind == "Alertmanager" }) {
		t.Fatal("the overlay must not bring its own Alertmanager")
	}
	am := &monitoringv1.Alertmanager{Spec: spec}
	am.Name, am.Namespace = "kube-prometheus-stack-alertmanager", namespace
	objs = append(objs, Object{Kind: "Alertmanager", Name: am.Name, Namespace: am.Namespace, Value: am})
	checkAll(t, objs, want{workload: "Alertmanager", replicas: 1, monitoring: true})
	sameAsChart(t, chartBridge(t), objs)
}
