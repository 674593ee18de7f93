package metric

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestFactory: what a Factory makes is named from the namespace and its
// subsystem, and is registered with the
// Registerer it was made with; with none, it is only made.
func TestFactory(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := With(reg, "storage")
	f.Counter("records_written_total", "Records.").Add(3)
	f.GaugeVec("queue_length", "Length.", "alertmanager").WithLabelValues("x").Set(2)
	want := `
# HELP falco_am_bridge_storage_queue_length Length.
# TYPE falco_am_bridge_storage_queue_length gauge
falco_am_bridge_storage_queue_length{alertmanager="x"} 2
# HELP falco_am_bridge_storage_records_written_total Records.
# TYPE falco_am_bridge_storage_records_written_total counter
falco_am_bridge_storage_records_written_total 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if got := Name("", "events_received_total"); got != "falco_am_bridge_events_received_total" {
		t.Errorf("Name = %q", got)
	}
	// Unregistered: making the same metric twice does not panic.
	With(nil, "").Counter("x_total", "X.")
	With(nil, "").Counter("x_total", "X.")
}
