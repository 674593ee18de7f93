package config

import (
	"strings"
	"testing"
)

func TestWebUI(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  string
		file string
		want bool
		err  string
	}{
		{name: "default on", want: true},
		{name: "flag off", args: []string{"--web.ui=false"}, want: false},
		{name: "bare flag", args: []string{"--web.ui"}, want: true},
		{name: "env off", env: "false", want: false},
		// The environment is read as the file is: YAML's true and false.
		{name: "env number", env: "0", err: `web.ui: "0" is not true or false`},
		{name: "file off", file: "web:\n  ui: false\n", want: false},
		{name: "flag beats file", args: []string{"--web.ui=true"}, file: "web:\n  ui: false\n", want: true},
		{name: "bad", args: []string{"--web.ui=maybe"}, err: `web.ui: "maybe" is not true or false`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("FALCO_AM_BRIDGE_WEB_UI", tc.env)
			}
			args := tc.args
			if tc.file != "" {
				args = append(args, "--config.file="+writeFile(t, "c.yaml", tc.file))
			}
			c, err := load(t, args...)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Web.UI != tc.want {
				t.Fatalf("web.ui = %v, want %v", c.Web.UI, tc.want)
			}
		})
	}
}
