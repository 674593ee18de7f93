package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// Load reads the configuration: flags set on the command line win over
// environment variables, which win over the file, which wins over
// defaults. The file is parsed once, into a tree of nodes, and checked
// against the Config tree for keys it does not have; then each setting is
// decoded once, from the source that won, into its typed field. Every
// problem is reported, each naming its key, and its line when the value is
// the file's.
func Load(fs *pflag.FlagSet) (*Config, error) {
	// Viper says which of a flag and an environment variable wins; the
	// file is not merged into it, so that its values keep their lines.
	v := viper.New()
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_", "-", "_"))
	v.AutomaticEnv()
	opts := allOptions()
	for _, o := range opts {
		f := fs.Lookup(o.flag)
		if f == nil {
			return nil, fmt.Errorf("flag --%s is not registered", o.flag)
		}
		if err := v.BindPFlag(o.key, f); err != nil {
			return nil, err
		}
	}

	c := &Config{}
	if f := fs.Lookup(ConfigFileFlag); f != nil && f.Changed {
		c.File = f.Value.String()
	} else {
		c.File = os.Getenv(envName(ConfigFileFlag))
	}
	var root *yaml.Node
	var errs []error
	if c.File != "" {
		var err error
		if root, err = parseFile(c.File); err != nil {
			return nil, err
		}
		errs = checkKeys("", "", root, reflect.TypeFor[Config](), knownKeys())
	}
	for _, o := range opts {
		n, at := o.source(v, root)
		if err := decode(n, o.field(c), o); err != nil {
			errs = append(errs, fmt.Errorf("%s%s: %w", at, o.key, err))
			continue
		}
		if err := o.check(c); err != nil {
			errs = append(errs, fmt.Errorf("%s%s: %w", at, o.key, err))
		}
	}
	for _, u := range c.Alertmanager.URLs {
		if t, err := ParseTarget(u); err == nil {
			c.Alertmanager.Targets = append(c.Alertmanager.Targets, t)
		}
	}
	c.Alertmanager.HTTPConfig = commoncfg.DefaultHTTPClientConfig
	if key, n := lookup(root, httpConfigKey); n != nil {
		if err := c.decodeHTTPConfig(n); err != nil {
			errs = append(errs, fmt.Errorf("%s%s: %w", lineOf(key), httpConfigKey, err))
		}
	}
	if c.Web.MaxRequestBytesInFlight < c.Web.MaxRequestBytes {
		errs = append(errs, fmt.Errorf("%sweb.max_request_bytes_in_flight: %d is less than web.max_request_bytes (%d): raise it, or no request of the largest size could be read",
			fileLine(root, "web.max_request_bytes_in_flight"), c.Web.MaxRequestBytesInFlight, c.Web.MaxRequestBytes))
	}
	if c.Alertmanager.MaxBackoff < c.Alertmanager.MinBackoff {
		errs = append(errs, fmt.Errorf("%salertmanager.max_backoff: %s is shorter than alertmanager.min_backoff (%s)",
			fileLine(root, "alertmanager.max_backoff"), c.Alertmanager.MaxBackoff, c.Alertmanager.MinBackoff))
	}
	errs = append(errs, c.checkNATS()...)
	if err := errors.Join(errs...); err != nil {
		if c.File != "" {
			return nil, fmt.Errorf("invalid configuration (%s):\n%w", c.File, err)
		}
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return c, nil
}

// parseFile parses the configuration file into its top mapping; nil for
// an empty file.
func parseFile(path string) (*yaml.Node, error) {
	data, err := ReadFile("config file", path, MaxConfigFileBytes)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return nil, nil
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: line %d: expected a mapping of settings (web:, alertmanager:, ...), not %s", path, top.Line, shown(top))
	}
	return top, nil
}

// source is the node that the option's value comes from: a flag or an
// environment variable, the file, or the default; and "line N: " when it
// is the file's.
func (o option) source(v *viper.Viper, root *yaml.Node) (*yaml.Node, string) {
	if v.IsSet(o.key) {
		switch raw := v.Get(o.key).(type) {
		case []string: // a repeated flag
			return sequence(raw), ""
		case string:
			if o.list() {
				// From the environment: comma- or space-separated.
				return sequence(strings.FieldsFunc(raw, func(c rune) bool { return c == ',' || c == ' ' })), ""
			}
			return scalar(raw), ""
		}
	}
	if key, n := lookup(root, o.key); n != nil {
		return n, lineOf(key)
	}
	if o.list() {
		if o.def == "" {
			return sequence(nil), ""
		}
		return sequence([]string{o.def}), ""
	}
	return scalar(o.def), ""
}

// scalar is a node of plain text, its type resolved as the file's would be.
func scalar(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: s} }

func sequence(l []string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode}
	for _, s := range l {
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s})
	}
	return n
}

// decode decodes n into field, the option's. YAML's own messages
// name Go types; these say what the setting takes.
func decode(n *yaml.Node, field any, o option) error {
	if o.list() {
		if n.Kind != yaml.SequenceNode && !isNull(n) {
			return fmt.Errorf("expected %s, got %s", o.expected(), shown(n))
		}
		for i, e := range n.Content {
			if e.Kind != yaml.ScalarNode {
				return fmt.Errorf("[%d]: expected a string, got %s", i, shown(e))
			}
		}
	} else if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected %s, got %s", o.expected(), shown(n))
	} else if o.typ.Kind() != reflect.String && n.Tag != "" {
		// Read "10000" or "true" by the setting's type, as a flag's
		// text is, whatever quotes a template put around it.
		plain := *n
		plain.Tag, plain.Style = "", 0
		n = &plain
	}
	if err := n.Decode(field); err != nil {
		if o.typ == reflect.TypeFor[model.Duration]() && strings.HasPrefix(n.Value, "-") {
			return fmt.Errorf("%q is negative: expected %s", n.Value, o.expected())
		}
		return fmt.Errorf("%q is not %s", n.Value, o.expected())
	}
	return nil
}

// decodeHTTPConfig decodes Prometheus's HTTP client configuration, whose
// keys checkKeys has checked, and makes its files relative to the
// configuration file.
func (c *Config) decodeHTTPConfig(n *yaml.Node) error {
	if err := n.Decode(&c.Alertmanager.HTTPConfig); err != nil {
		return err
	}
	if c.File != "" {
		c.Alertmanager.HTTPConfig.SetDirectory(filepath.Dir(c.File))
	}
	return c.Alertmanager.HTTPConfig.Validate()
}

// checkNATS checks the JetStream source's settings against each other.
func (c *Config) checkNATS() []error {
	n := c.Source.NATS
	if !n.Enabled() {
		return nil
	}
	var errs []error
	if n.Stream == "" {
		errs = append(errs, errors.New("source.nats.stream: a stream name is needed with source.nats.urls"))
	}
	if n.CredentialsFile != "" && n.NKeySeedFile != "" {
		errs = append(errs, errors.New("source.nats.nkey_seed_file: set at most one of source.nats.credentials_file and source.nats.nkey_seed_file"))
	}
	if (n.TLS.CertFile == "") != (n.TLS.KeyFile == "") {
		errs = append(errs, errors.New("source.nats.tls.cert_file: a client certificate needs both source.nats.tls.cert_file and source.nats.tls.key_file"))
	}
	// In memory, a full queue drops its oldest alerts, and their events
	// would be acknowledged unsent: the stream must stop first.
	if c.Storage.Path == "" && n.MaxAckPending > c.Alertmanager.QueueCapacity {
		errs = append(errs, fmt.Errorf("source.nats.max_ack_pending: %d is more than alertmanager.queue_capacity (%d): without storage.path a full queue would drop events already taken from the stream; lower it or raise the queue", n.MaxAckPending, c.Alertmanager.QueueCapacity))
	}
	return errs
}

// lookup finds a dotted key in the file's top mapping: the node of its
// last key and that of its value; nils when the file does not set it.
func lookup(root *yaml.Node, key string) (k, v *yaml.Node) {
	v = root
	for part := range strings.SplitSeq(key, ".") {
		if v == nil || v.Kind != yaml.MappingNode {
			return nil, nil
		}
		k, v = entry(v, part)
	}
	if v == nil || isNull(v) {
		return nil, nil
	}
	return k, v
}

// entry is the key and the value of name in mapping m; the last wins, as
// when YAML is decoded.
func entry(m *yaml.Node, name string) (k, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == name {
			k, v = m.Content[i], m.Content[i+1]
		}
	}
	if v != nil && v.Kind == yaml.AliasNode {
		v = v.Alias
	}
	return k, v
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// lineOf is "line N: " for a node of the file, or "".
func lineOf(n *yaml.Node) string {
	if n == nil || n.Line == 0 {
		return ""
	}
	return fmt.Sprintf("line %d: ", n.Line)
}

func fileLine(root *yaml.Node, key string) string {
	k, _ := lookup(root, key)
	return lineOf(k)
}

// shown names what a node is, for an error: a mapping, a list or its text.
func shown(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return n.Value
}

// ownType says whether t is one of this package's (a section of the
// tree), not a library's.
func ownType(t reflect.Type) bool { return t.PkgPath() == reflect.TypeFor[Config]().PkgPath() }

// yamlName is the key of a struct field: its yaml tag's name; "" when the
// file has none (yaml:"-", or inline).
func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	if name == "" && !strings.Contains(f.Tag.Get("yaml"), "inline") {
		return strings.ToLower(f.Name) // yaml's own default
	}
	return name
}

func joinKey(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// structFields are the keys a mapping decoded into t may hold, each with
// its type, inline structs' included; rest is the value type of an inline
// map, which takes any other key.
func structFields(t reflect.Type) (fields map[string]reflect.Type, rest reflect.Type) {
	fields = map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() || f.Tag.Get("yaml") == "-" {
			continue
		}
		if name := yamlName(f); name != "" {
			fields[name] = f.Type
			continue
		}
		switch ft := deref(f.Type); ft.Kind() {
		case reflect.Struct:
			inner, innerRest := structFields(ft)
			for k, v := range inner {
				fields[k] = v
			}
			if innerRest != nil {
				rest = innerRest
			}
		case reflect.Map:
			rest = ft.Elem()
		}
	}
	return fields, rest
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// checkKeys walks node n alongside type t and refuses every key that t
// does not have, with its line and the nearest known key. A section of
// the tree that is not a mapping is refused too; the values themselves
// are left to decoding.
func checkKeys(prefix, at string, n *yaml.Node, t reflect.Type, known []string) []error {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	t = deref(t)
	var errs []error
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if ownType(t) && !isNull(n) {
				errs = append(errs, fmt.Errorf("%s%s: expected a mapping of settings, got %s", at, prefix, shown(n)))
			}
			return errs
		}
		fields, rest := structFields(t)
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := joinKey(prefix, k.Value)
			// Decoding would let the last win, silently.
			if line, ok := seen[k.Value]; ok {
				errs = append(errs, fmt.Errorf("%s%q is set again; it is first set on line %d", lineOf(k), key, line))
				continue
			}
			seen[k.Value] = k.Line
			ft, ok := fields[k.Value]
			if !ok && rest == nil {
				errs = append(errs, fmt.Errorf("%sunknown key %q%s", lineOf(k), key, suggest(key, known)))
				continue
			}
			if !ok {
				ft = rest
			}
			errs = append(errs, checkKeys(key, lineOf(k), v, ft, known)...)
		}
	case reflect.Map:
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				errs = append(errs, checkKeys(joinKey(prefix, n.Content[i].Value), lineOf(n.Content[i]), n.Content[i+1], t.Elem(), known)...)
			}
		}
	case reflect.Slice:
		if n.Kind == yaml.SequenceNode {
			for i, e := range n.Content {
				errs = append(errs, checkKeys(fmt.Sprintf("%s[%d]", prefix, i), lineOf(e), e, t.Elem(), known)...)
			}
		}
	}
	return errs
}

// knownKeys are the dotted keys of the Config tree, sections and the HTTP
// client configuration's keys included: what a misspelt key is compared
// with.
func knownKeys() []string {
	var out []string
	seen := map[reflect.Type]bool{}
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		t = deref(t)
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		defer delete(seen, t)
		fields, _ := structFields(t)
		for name, ft := range fields {
			key := joinKey(prefix, name)
			out = append(out, key)
			walk(key, ft)
		}
	}
	walk("", reflect.TypeFor[Config]())
	slices.Sort(out)
	return out
}

// suggest returns `; did you mean "x"?` for the known key nearest to key,
// when one is a few edits away.
func suggest(key string, known []string) string {
	best, bestD := "", 4
	for _, k := range known {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
