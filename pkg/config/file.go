package config

import (
	"fmt"
	"io"
	"os"
)

// Size limits of the files the settings name. Each is far above what a
// real file of its kind holds, and keeps a setting pointed at the wrong
// file (a log, /dev/zero) from taking the memory of the process.
const (
	MaxConfigFileBytes    = 1 << 20  // --config.file
	MaxMappingFileBytes   = 16 << 20 // mapping.file
	MaxTokenFileBytes     = 64 << 10 // web.bearer_token_file
	MaxWebConfigFileBytes = 1 << 20  // web.config_file
)

// ReadFile reads the file at path, which setting names, but never more
// than limit bytes: a larger file, or one without end, fails with an error
// naming both the setting and the file.
func ReadFile(setting, path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	defer f.Close()
	// One byte more tells a file of exactly limit bytes from a larger one.
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: reading %s: %w", setting, path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: %s: larger than %s", setting, path, formatBytes(limit))
	}
	return data, nil
}

// formatBytes writes n in the largest binary unit that divides it.
func formatBytes(n int64) string {
	if v, unit := binaryUnit(n); unit != "" {
		return fmt.Sprintf("%d %s", v, unit)
	}
	return fmt.Sprintf("%d bytes", n)
}
