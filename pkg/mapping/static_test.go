package mapping

import (
	"testing"

	"github.com/prometheus/common/model"
)

func TestStaticLabels(t *testing.T) {
	m, err := Parse("m.yaml", []byte("static_labels:\n  cluster: prod\n  team: '{{x}}'\n  empty: ''\nlabels:\n  alertname: x\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := model.LabelSet{"cluster": "prod", "team": "{ {x} }"}
	if got := m.StaticLabels(); !got.Equal(want) {
		t.Errorf("StaticLabels() = %v, want %v", got, want)
	}
}
