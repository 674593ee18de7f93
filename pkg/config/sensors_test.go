package config

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

func TestSensorSettings(t *testing.T) {
	c, err := load(t)
	if err != nil {
		t.Fatal(err)
	}
	if c.Sensors.MaxTracked != 10000 || c.Sensors.SilentAfter != 0 {
		t.Errorf("defaults: %+v", c.Sensors)
	}

	file := writeFile(t, "c.yaml", "sensors:\n  max_tracked: 500\n  silent_after: 10m\n")
	c, err = load(t, "--config.file="+file)
	if err != nil {
		t.Fatal(err)
	}
	if c.Sensors.MaxTracked != 500 || c.Sensors.SilentAfter != model.Duration(10*time.Minute) {
		t.Errorf("from the file: %+v", c.Sensors)
	}

	t.Setenv("FALCO_AM_BRIDGE_SENSORS_SILENT_AFTER", "15m")
	c, err = load(t, "--config.file="+file, "--sensors.max-tracked=20")
	if err != nil {
		t.Fatal(err)
	}
	if c.Sensors.MaxTracked != 20 || c.Sensors.SilentAfter != model.Duration(15*time.Minute) {
		t.Errorf("flag and environment: %+v", c.Sensors)
	}
}

func TestSensorSettingErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		file string
		want string
	}{
		{[]string{"--sensors.max-tracked=0"}, "", "sensors.max_tracked: 0 must be greater than 0"},
		{[]string{"--sensors.max-tracked=many"}, "", `sensors.max_tracked: "many" is not a whole number`},
		{[]string{"--sensors.silent-after=soon"}, "", `sensors.silent_after: "soon" is not a duration`},
		{nil, "sensors:\n  silent_afer: 5m\n", `unknown key "sensors.silent_afer"`},
	} {
		args := tc.args
		if tc.file != "" {
			args = append(args, "--config.file="+writeFile(t, "c.yaml", tc.file))
		}
		_, err := load(t, args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %q: error %v, want %q", tc.args, tc.file, err, tc.want)
		}
	}
}
