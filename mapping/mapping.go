// Package mapping holds the label-mapping files shipped with falco-am-bridge.
// default.yaml is the mapping the binary uses when --mapping.file is not set;
// pkg/mapping compiles it.
package mapping

import _ "embed"

// Default is the content of default.yaml.
//
//go:embed default.yaml
var Default []byte
