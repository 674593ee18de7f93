package config

import (
	"errors"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Size is a number of bytes, written as a number or with a unit: 1048576,
// 4MiB, 1GB.
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1},
}

var errNotSize = errors.New("not a size")

// parseSize reads a size: a whole number of bytes, with or without a unit
// (KiB, MiB, GiB, KB, MB, GB, B).
func parseSize(s string) (Size, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<63-1)/mult {
		return 0, errNotSize
	}
	return Size(n * mult), nil
}

// UnmarshalYAML reads a size from a scalar.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errNotSize
	}
	v, err := parseSize(n.Value)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// String writes the size in the largest binary unit that divides it.
func (s Size) String() string {
	n, unit := binaryUnit(int64(s))
	return strconv.FormatInt(n, 10) + unit
}

// binaryUnit is n in the largest binary unit that divides it, and that
// unit; or n and "".
func binaryUnit(n int64) (int64, string) {
	for _, u := range sizeUnits[:3] {
		if n >= u.mult && n%u.mult == 0 {
			return n / u.mult, u.suffix
		}
	}
	return n, ""
}
