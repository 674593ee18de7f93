package mapping

import "github.com/prometheus/common/model"

// StaticLabels returns the mapping's static_labels as they go on every
// alert, for alerts the bridge makes itself (FalcoSensorSilent).
func (m *Mapping) StaticLabels() model.LabelSet {
	ls := make(model.LabelSet, len(m.static))
	for _, s := range m.static {
		if v := m.clean(s.value, m.maxLabel, false); v != "" {
			ls[s.name] = model.LabelValue(v)
		}
	}
	return ls
}
