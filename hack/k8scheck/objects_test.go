package k8scheck

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

func TestDecode(t *testing.T) {
	const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: x
spec:
  template:
    spec:
      containers:
        - name: c
          image: i
`
	objs, err := Decode([]byte("# a comment\n---\n" + deployment + "---\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].String() != "Deployment/x" {
		t.Fatalf("got %v", objs)
	}
	if d := objs[0].Value.(*appsv1.Deployment); d.Spec.Template.Spec.Containers[0].Image != "i" {
		t.Errorf("decoded %+v", d.Spec.Template.Spec)
	}

	for _, tc := range []struct{ name, doc, want string }{
		{"misspelt field", strings.Replace(deployment, "image: i", "imgae: i", 1), `unknown field "imgae"`},
		{"field at the wrong level", strings.Replace(deployment, "  template:", "  replicas: 2\n  containers: []\n  template:", 1), `unknown field "containers"`},
		{"duplicate key", strings.Replace(deployment, "image: i", "image: i\n          image: j", 1), `"image" already set`},
		{"wrong type", strings.Replace(deployment, "name: c", "name: [c]", 1), "cannot unmarshal array"},
		{"unknown kind", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n", "no Go type known"},
		{"wrong version", strings.Replace(deployment, "apps/v1", "apps/v1beta1", 1), "no Go type known"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}
