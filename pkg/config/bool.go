package config

import (
	"fmt"
	"strconv"
	"strings"
)

// boolean reads true or false (also 1/0, yes/no, on/off, any case).
func (v value) boolean() (bool, error) {
	if b, ok := v.raw.(bool); ok {
		return b, nil
	}
	switch strings.ToLower(strings.TrimSpace(v.String())) {
	case "yes", "on":
		return true, nil
	case "no", "off":
		return false, nil
	}
	b, err := strconv.ParseBool(strings.TrimSpace(v.String()))
	if err != nil {
		return false, fmt.Errorf("%q is not true or false", v.String())
	}
	return b, nil
}
