package storage

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"time"

	"github.com/prometheus/common/model"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
)

// legacyRecord is how releases before the spool became the queue stored an
// alert: a 4-byte length, a 4-byte CRC-32C, then this as JSON. Open
// rewrites such segments in the current format, so an upgrade loses
// nothing; nothing else reads them.
type legacyRecord struct {
	Labels       map[string]string `json:"l"`
	Annotations  map[string]string `json:"a,omitempty"`
	StartsAt     time.Time         `json:"s"`
	EndsAt       time.Time         `json:"e"`
	GeneratorURL string            `json:"g,omitempty"`
}

// migrate appends the alerts of legacy segments, in order, then deletes
// those files.
func (s *Store) migrate(paths []string) error {
	for _, path := range paths {
		wires, err := readLegacy(path)
		if err != nil {
			return fmt.Errorf("storage: migrating %s: %w", path, err)
		}
		for rest := wires; len(rest) > 0; {
			n := min(len(rest), 1024)
			if err := s.Append(rest[:n]); err != nil {
				return fmt.Errorf("storage: migrating %s: %w", path, err)
			}
			s.metrics.migrated.Add(float64(n))
			rest = rest[n:]
		}
		s.mu.Lock()
		err = s.syncLocked()
		s.mu.Unlock()
		if err != nil {
			return fmt.Errorf("storage: migrating %s: %w", path, err)
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("storage: migrating %s: %w", path, err)
		}
		s.logger.Info("durable queue: rewrote a segment of an earlier release", "segment", path, "alerts", len(wires))
	}
	return nil
}

func readLegacy(path string) ([]*alert.Wire, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var out []*alert.Wire
	var h [8]byte
	for {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return out, nil // the end, or a torn record: what came before is kept
		}
		n := binary.LittleEndian.Uint32(h[0:4])
		if n > maxRecord {
			return out, nil
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			return out, nil
		}
		if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(h[4:8]) {
			return out, nil
		}
		var rec legacyRecord
		if err := json.Unmarshal(payload, &rec); err != nil {
			return out, nil
		}
		a := &alert.Alert{Labels: model.LabelSet{}, StartsAt: rec.StartsAt, EndsAt: rec.EndsAt, GeneratorURL: rec.GeneratorURL}
		for k, v := range rec.Labels {
			a.Labels[model.LabelName(k)] = model.LabelValue(v)
		}
		if len(rec.Annotations) > 0 {
			a.Annotations = model.LabelSet{}
			for k, v := range rec.Annotations {
				a.Annotations[model.LabelName(k)] = model.LabelValue(v)
			}
		}
		if a.Check() != nil {
			continue
		}
		out = append(out, alert.Encode(a))
	}
}
