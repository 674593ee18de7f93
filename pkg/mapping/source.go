package mapping

// Source returns the mapping file as it was parsed. The caller must not
// change it.
func (m *Mapping) Source() []byte { return m.source }
