package config

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/spf13/pflag"
)

// EnvPrefix starts every environment variable that sets an option.
const EnvPrefix = "FALCO_AM_BRIDGE"

// ConfigFileFlag names the flag (and, upper-cased, the environment
// variable) that points at the configuration file.
const ConfigFileFlag = "config.file"

// httpConfigKey is the file-only key holding Prometheus's HTTP client
// configuration (TLS, authentication, proxy, headers) for Alertmanager.
const httpConfigKey = "alertmanager.http_config"

// option is one setting: a field of the Config tree that is not a section.
// Its tags say the rest: yaml its key (dotted from the tree's root, in the
// file and the environment), flag its flag when that is not the key with
// dashes, default, check (comma-separated names of checks), reload and
// help.
type option struct {
	flag, key, def, help string
	typ                  reflect.Type // the field's
	index                []int        // the field's, from the root
	checks               []check
}

// field is a pointer to the option's field of c.
func (o option) field(c *Config) any {
	return reflect.ValueOf(c).Elem().FieldByIndex(o.index).Addr().Interface()
}

// check checks the option's decoded value, which a check may also
// normalise (oneof keeps the word in lower case).
func (o option) check(c *Config) error {
	for _, ch := range o.checks {
		if err := ch.fn(o.field(c)); err != nil {
			return err
		}
	}
	return nil
}

// list says whether the option is a repeatable flag, a list in the file.
func (o option) list() bool { return o.typ.Kind() == reflect.Slice }

// typeName is the option's type as --help shows it.
func (o option) typeName() string {
	switch o.typ {
	case reflect.TypeFor[model.Duration]():
		return "duration"
	case reflect.TypeFor[Size]():
		return "size"
	case reflect.TypeFor[int]():
		// Not "int": viper converts flags of that type itself, silently.
		return "number"
	case reflect.TypeFor[bool]():
		return "boolean"
	}
	return "string"
}

// expected says what a value of the option's type looks like.
func (o option) expected() string {
	switch o.typeName() {
	case "duration":
		return "a duration (like 500ms, 10s, 5m)"
	case "size":
		return "a size (like 4MiB or 1048576)"
	case "number":
		return "a whole number"
	case "boolean":
		return "true or false"
	}
	if o.list() {
		return "a list of strings"
	}
	return "a string"
}

// allOptions are the options of the Config tree, in its order, read once
// from its tags. A check named but unknown, or of another type than its
// field, panics: TestEveryFieldIsOneSetting finds it.
var allOptions = sync.OnceValue(func() []option {
	var out []option
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := yamlName(f)
			if name == "" || f.Tag.Get("flag") == "-" {
				continue
			}
			key, at := joinKey(prefix, name), append(slices.Clone(index), i)
			if f.Type.Kind() == reflect.Struct && ownType(f.Type) {
				walk(f.Type, key, at)
				continue
			}
			o := option{flag: f.Tag.Get("flag"), key: key, def: f.Tag.Get("default"), help: f.Tag.Get("help"), typ: f.Type, index: at}
			if o.flag == "" {
				o.flag = strings.ReplaceAll(key, "_", "-")
			}
			for spec := range strings.SplitSeq(f.Tag.Get("check"), ",") {
				if spec != "" {
					o.checks = append(o.checks, checkOf(spec, f.Type, key))
				}
			}
			out = append(out, o)
		}
	}
	walk(reflect.TypeFor[Config](), "", nil)
	return out
})

// check is one named check of a setting's value, through a pointer to it.
type check struct {
	typ reflect.Type // what it points at
	fn  func(any) error
}

// typed is the check of a *T by f.
func typed[T any](f func(*T) error) check {
	return check{typ: reflect.TypeFor[T](), fn: func(p any) error { return f(p.(*T)) }}
}

// checks are the checks a check tag may name, by name; a name may have one
// for each of several types.
var checks = map[string][]check{
	"positive":    {typed(positive[int]), typed(positive[model.Duration]), typed(positive[Size])},
	"hostport":    {typed(hostPort)},
	"targets":     {typed(eachOf(checkTarget))},
	"natsurls":    {typed(eachOf(checkNATSURL))},
	"natsname":    {typed(natsName)},
	"natssubject": {typed(natsSubject)},
	"required":    {typed(required)},
}

// checkOf is the check that spec names for a field of type t: a name of
// checks, or oneof=a|b|c.
func checkOf(spec string, t reflect.Type, key string) check {
	if words, ok := strings.CutPrefix(spec, "oneof="); ok {
		spec = "oneof"
		if t == reflect.TypeFor[string]() {
			return typed(oneOf(strings.Split(words, "|")...))
		}
	}
	for _, c := range checks[spec] {
		if c.typ == t {
			return c
		}
	}
	panic(fmt.Sprintf("config: %s: no check %q for a %s", key, spec, t))
}

// hostPort checks an address to listen on.
func hostPort(s *string) error {
	if _, _, err := net.SplitHostPort(*s); err != nil {
		return fmt.Errorf("%q is not host:port: %w", *s, err)
	}
	return nil
}

// positive checks that a number, a duration or a size is above 0.
func positive[T int | model.Duration | Size](v *T) error {
	if *v <= 0 {
		return fmt.Errorf("%v must be greater than 0", *v)
	}
	return nil
}

// oneOf checks that a word is one of allowed, in any case, and keeps it in
// lower case.
func oneOf(allowed ...string) func(*string) error {
	return func(s *string) error {
		v := strings.ToLower(strings.TrimSpace(*s))
		if !slices.Contains(allowed, v) {
			return fmt.Errorf("%q is not one of %s", *s, strings.Join(allowed, ", "))
		}
		*s = v
		return nil
	}
}

// required checks that a string is set.
func required(s *string) error {
	if *s == "" {
		return errors.New("must be set")
	}
	return nil
}

// eachOf checks every entry of a list, naming the ones it refuses by index.
func eachOf(check func(string) error) func(*[]string) error {
	return func(l *[]string) error {
		var errs []error
		for i, s := range *l {
			if err := check(s); err != nil {
				errs = append(errs, fmt.Errorf("[%d]: %w", i, err))
			}
		}
		return errors.Join(errs...)
	}
}

func checkTarget(s string) error {
	_, err := ParseTarget(s)
	return err
}

func checkNATSURL(s string) error {
	_, err := ParseNATSURL(s)
	return err
}

// natsName checks a stream or consumer name: no spaces, dots, wildcards or
// path separators.
func natsName(s *string) error {
	if strings.ContainsAny(*s, " \t\r\n.*>/\\") {
		return fmt.Errorf("%q is not a NATS name: no spaces, '.', '*', '>', '/' or '\\'", *s)
	}
	return nil
}

// natsSubject checks a subject filter such as falco.> or falco.critical.*.
func natsSubject(s *string) error {
	tokens := strings.Split(*s, ".")
	for i, t := range tokens {
		switch {
		case t == "" || strings.ContainsAny(t, " \t\r\n"):
			return fmt.Errorf("%q is not a NATS subject: empty token or white space", *s)
		case t == ">" && i != len(tokens)-1:
			return fmt.Errorf("%q is not a NATS subject: '>' must be the last token", *s)
		case len(t) > 1 && strings.ContainsAny(t, "*>"):
			return fmt.Errorf("%q is not a NATS subject: a wildcard must be a whole token", *s)
		}
	}
	return nil
}

// Setting describes one option for documentation.
type Setting struct {
	Flag, Key, Env, Default, Help string
}

// Settings lists every option; the README's reference and the reload
// tests are checked against it.
func Settings() []Setting {
	out := []Setting{{Flag: ConfigFileFlag, Env: envName(ConfigFileFlag), Help: "YAML configuration file; every other flag can also be set there."}}
	for _, o := range allOptions() {
		out = append(out, Setting{Flag: o.flag, Key: o.key, Env: envName(o.key), Default: o.def, Help: o.help})
	}
	out = append(out, Setting{Key: httpConfigKey, Help: "Prometheus HTTP client configuration for Alertmanager (tls_config, basic_auth, authorization, oauth2, proxy_url, http_headers); file only."})
	return out
}

func envName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}

// RegisterFlags adds the serve flags to fs.
func RegisterFlags(fs *pflag.FlagSet) {
	fs.String(ConfigFileFlag, "", "YAML configuration file; every other flag can also be set there (env "+envName(ConfigFileFlag)+").")
	for _, o := range allOptions() {
		help := o.help + " (env " + envName(o.key) + ")"
		if o.list() {
			var def []string
			if o.def != "" {
				def = []string{o.def}
			}
			fs.StringArray(o.flag, def, help)
			continue
		}
		fs.Var(&textValue{s: o.def, typ: o.typeName()}, o.flag, help)
		fs.Lookup(o.flag).DefValue = o.def
		if o.typeName() == "boolean" {
			fs.Lookup(o.flag).NoOptDefVal = "true"
		}
	}
}

// textValue is a flag kept as its text, which names its type in --help;
// Load decodes it, with errors naming the key, as it decodes the file.
type textValue struct{ s, typ string }

func (v *textValue) String() string     { return v.s }
func (v *textValue) Set(s string) error { v.s = s; return nil }
func (v *textValue) Type() string       { return v.typ }
