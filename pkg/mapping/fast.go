package mapping

import (
	"fmt"
	"net/url"
	"strconv"
	"text/template"
	tparse "text/template/parse"
	"time"

	"github.com/prometheus/common/model"
)

// Most mapping templates are a field, a Falco field lookup, or a short
// or/and/if/with chain of those. text/template evaluates them by reflection
// on every event, which cost most of the time of mapping one. fastTemplate
// evaluates such a template directly: its parse tree is compiled, once, into
// closures over Data.
//
// The compiler accepts only what it models exactly as text/template would run
// it: every value has a kind known at compile time (or a small set of kinds,
// for and/or over mixed arguments), and anything it does not model (range,
// variables, template calls, numbers, printing anything but a string or a
// bool, a function it does not know the type of, an argument of the wrong
// type) makes the whole template use text/template instead. At run time a
// function that fails (returns an error, or panics) abandons the fast path,
// and the template is run by text/template, which then reports the error as
// it always has.

// kind is what a value can be, as a bit so that an expression can say it
// may be one of several.
type kind uint8

const (
	kindString  kind = 1 << iota
	kindBool         // .HasTag, eq, ne, not, true
	kindStrings      // .Tags
	kindTime         // .Time, .ReceivedAt
	kindLabels       // .Labels
	kindData         // *Data: $, and . outside with
)

// value is the result of an expression; kind says which field holds it.
// Slices and times are held by pointer (into Data) so that a value fits in
// registers when closures return it.
type value struct {
	kind kind
	b    bool
	s    string
	ss   *[]string
	m    model.LabelSet
	t    *time.Time
}

// truth is text/template's truth: a non-empty string, slice or map, true, a
// struct (time.Time) or a non-nil pointer (*Data).
func (v value) truth() bool {
	switch v.kind {
	case kindString:
		return v.s != ""
	case kindBool:
		return v.b
	case kindStrings:
		return len(*v.ss) > 0
	case kindLabels:
		return len(v.m) > 0
	}
	return true
}

// The dot is d itself (kindData) or, inside {{ with }} of a string, that
// string.
type (
	evalFn  func(d *Data, dot string) value
	cmdFn   func(d *Data, dot string, final value) value
	writeFn func(w *output, d *Data, dot string)
)

// output collects what a template writes. Most templates write one piece
// (the value of a field, or nothing), which it returns without a copy.
type output struct {
	first  string
	buf    []byte
	pieces int
}

func (o *output) reset() { o.first, o.buf, o.pieces = "", o.buf[:0], 0 }

func (o *output) WriteString(s string) {
	switch {
	case s == "":
		return
	case o.pieces == 0:
		o.first = s
	case o.pieces == 1:
		o.buf = append(append(o.buf[:0], o.first...), s...)
	default:
		o.buf = append(o.buf, s...)
	}
	o.pieces++
}

func (o *output) String() string {
	if o.pieces <= 1 {
		return o.first
	}
	return string(o.buf)
}

// expr is a compiled expression and the kinds its value can have.
type expr struct {
	kinds kind
	eval  evalFn
}

// fastTemplate is a template compiled to direct evaluation. One of str
// (a template that is a single string-valued action) and write is set.
type fastTemplate struct {
	str   func(d *Data) string
	write writeFn
}

// fallBack, panicked at run time, abandons the fast path.
type fallBack struct{ err error }

// run renders the template, or reports ok false when text/template must.
func (f *fastTemplate) run(o *output, d *Data) (s string, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			s, ok = "", false
		}
	}()
	if f.str != nil {
		return f.str(d), true
	}
	o.reset()
	f.write(o, d, "")
	return o.String(), true
}

// unsupported, panicked at compile time, says why a template stays with
// text/template.
type unsupported string

// compileFast compiles t, parsed with funcs, or says why it cannot.
func compileFast(t *template.Template, funcs template.FuncMap) (f *fastTemplate, why string) {
	defer func() {
		if r := recover(); r != nil {
			u, ok := r.(unsupported)
			if !ok {
				panic(r)
			}
			f, why = nil, string(u)
		}
	}()
	if t.Tree == nil || t.Root == nil {
		return nil, "no parse tree"
	}
	c := fastCompiler{funcs: funcs}
	root := t.Root
	if len(root.Nodes) == 1 {
		if a, ok := root.Nodes[0].(*tparse.ActionNode); ok && len(a.Pipe.Decl) == 0 {
			if e := c.pipe(a.Pipe, kindData); e.kinds == kindString {
				return &fastTemplate{str: func(d *Data) string { return e.eval(d, "").s }}, ""
			}
		}
	}
	return &fastTemplate{write: c.list(root, kindData)}, ""
}

type fastCompiler struct {
	funcs template.FuncMap
}

func (c *fastCompiler) list(l *tparse.ListNode, dot kind) writeFn {
	if l == nil {
		return func(*output, *Data, string) {}
	}
	var steps []writeFn
	for _, n := range l.Nodes {
		if s := c.node(n, dot); s != nil {
			steps = append(steps, s)
		}
	}
	switch len(steps) {
	case 0:
		return func(*output, *Data, string) {}
	case 1:
		return steps[0]
	}
	return func(w *output, d *Data, dot string) {
		for _, s := range steps {
			s(w, d, dot)
		}
	}
}

func (c *fastCompiler) node(n tparse.Node, dot kind) writeFn {
	switch n := n.(type) {
	case *tparse.TextNode:
		text := string(n.Text)
		return func(w *output, _ *Data, _ string) { w.WriteString(text) }
	case *tparse.CommentNode:
		return nil
	case *tparse.ActionNode:
		// A declaration's value is not printed; variables are not modelled.
		e := c.pipe(n.Pipe, dot)
		return c.print(e)
	case *tparse.IfNode:
		cond := c.pipe(n.Pipe, dot).eval
		then, els := c.list(n.List, dot), c.list(n.ElseList, dot)
		return func(w *output, d *Data, dot string) {
			if cond(d, dot).truth() {
				then(w, d, dot)
			} else {
				els(w, d, dot)
			}
		}
	case *tparse.WithNode:
		e := c.pipe(n.Pipe, dot)
		els := c.list(n.ElseList, dot)
		switch e.kinds {
		case kindString:
			body := c.list(n.List, kindString)
			return func(w *output, d *Data, dot string) {
				if v := e.eval(d, dot); v.s != "" {
					body(w, d, v.s)
				} else {
					els(w, d, dot)
				}
			}
		case kindData:
			// A pointer is always true.
			return c.list(n.List, kindData)
		}
		unsupportedf("with over %s", kindName(e.kinds))
	}
	unsupportedf("%T", n)
	return nil
}

// print writes a value as text/template does (fmt.Fprint), for the kinds
// whose printing is plain: a string as is, a bool as true or false.
func (c *fastCompiler) print(e expr) writeFn {
	if e.kinds&^(kindString|kindBool) != 0 {
		unsupportedf("printing %s", kindName(e.kinds))
	}
	return func(w *output, d *Data, dot string) {
		v := e.eval(d, dot)
		if v.kind == kindString {
			w.WriteString(v.s)
		} else {
			w.WriteString(strconv.FormatBool(v.b))
		}
	}
}

func (c *fastCompiler) pipe(p *tparse.PipeNode, dot kind) expr {
	if p == nil || len(p.Decl) > 0 || p.IsAssign || len(p.Cmds) == 0 {
		unsupportedf("variables")
	}
	cmds := make([]cmdFn, len(p.Cmds))
	var kinds kind
	for i, cmd := range p.Cmds {
		// The previous command's value is this one's final argument.
		kinds, cmds[i] = c.command(cmd, dot, kinds)
	}
	if len(cmds) == 1 {
		cmd := cmds[0]
		return expr{kinds, func(d *Data, dot string) value { return cmd(d, dot, value{}) }}
	}
	return expr{kinds, func(d *Data, dot string) value {
		var v value
		for _, cmd := range cmds {
			v = cmd(d, dot, v)
		}
		return v
	}}
}

// command compiles a command. final is the kinds of the value piped into it,
// 0 when none is.
func (c *fastCompiler) command(cmd *tparse.CommandNode, dot, final kind) (kind, cmdFn) {
	args := cmd.Args[1:]
	switch n := cmd.Args[0].(type) {
	case *tparse.FieldNode:
		return c.chain(c.dot(dot), n.Ident, args, final, dot)
	case *tparse.VariableNode:
		return c.variable(n, args, final, dot)
	case *tparse.IdentifierNode:
		return c.call(n.Ident, args, final, dot)
	case *tparse.PipeNode, *tparse.StringNode, *tparse.BoolNode, *tparse.DotNode:
		if len(args) > 0 || final != 0 {
			unsupportedf("argument to a non-function")
		}
		e := c.arg(n, dot)
		return e.kinds, func(d *Data, dot string, _ value) value { return e.eval(d, dot) }
	}
	unsupportedf("command %T", cmd.Args[0])
	return 0, nil
}

// arg compiles an argument. A field or function named as an argument is
// called without arguments, as text/template does.
func (c *fastCompiler) arg(n tparse.Node, dot kind) expr {
	var kinds kind
	var fn cmdFn
	switch n := n.(type) {
	case *tparse.DotNode:
		return c.dot(dot)
	case *tparse.PipeNode:
		return c.pipe(n, dot)
	case *tparse.StringNode:
		v := value{kind: kindString, s: n.Text}
		return expr{kindString, func(*Data, string) value { return v }}
	case *tparse.BoolNode:
		v := value{kind: kindBool, b: n.True}
		return expr{kindBool, func(*Data, string) value { return v }}
	case *tparse.FieldNode:
		kinds, fn = c.chain(c.dot(dot), n.Ident, nil, 0, dot)
	case *tparse.VariableNode:
		kinds, fn = c.variable(n, nil, 0, dot)
	case *tparse.IdentifierNode:
		kinds, fn = c.call(n.Ident, nil, 0, dot)
	default:
		unsupportedf("argument %T", n)
	}
	return expr{kinds, func(d *Data, dot string) value { return fn(d, dot, value{}) }}
}

func (c *fastCompiler) dot(dot kind) expr {
	if dot == kindString {
		return expr{kindString, func(_ *Data, dot string) value { return value{kind: kindString, s: dot} }}
	}
	return expr{kindData, func(*Data, string) value { return value{kind: kindData} }}
}

func (c *fastCompiler) variable(n *tparse.VariableNode, args []tparse.Node, final, dot kind) (kind, cmdFn) {
	if n.Ident[0] != "$" {
		unsupportedf("variable %s", n.Ident[0])
	}
	root := expr{kindData, func(*Data, string) value { return value{kind: kindData} }}
	if len(n.Ident) == 1 {
		if len(args) > 0 || final != 0 {
			unsupportedf("argument to a non-function")
		}
		return kindData, func(*Data, string, value) value { return value{kind: kindData} }
	}
	return c.chain(root, n.Ident[1:], args, final, dot)
}

// chain compiles .a.b.c on recv: every name but the last is evaluated
// without arguments, the last gets args and final.
func (c *fastCompiler) chain(recv expr, names []string, args []tparse.Node, final, dot kind) (kind, cmdFn) {
	for _, name := range names[:len(names)-1] {
		kinds, fn := c.field(recv, name, nil, 0, dot)
		recv = expr{kinds, func(d *Data, dot string) value { return fn(d, dot, value{}) }}
	}
	return c.field(recv, names[len(names)-1], args, final, dot)
}

// dataStrings are the string fields (and the one string method) of Data.
var dataStrings = map[string]func(d *Data) string{
	"FieldsJSON": (*Data).FieldsJSON,
	"Rule":       func(d *Data) string { return d.Rule },
	"Priority":   func(d *Data) string { return d.Priority },
	"Severity":   func(d *Data) string { return d.Severity },
	"Source":     func(d *Data) string { return d.Source },
	"Hostname":   func(d *Data) string { return d.Hostname },
	"Output":     func(d *Data) string { return d.Output },
	"Message":    func(d *Data) string { return d.Message },
	"UUID":       func(d *Data) string { return d.UUID },
}

// field compiles a field or method of recv, as text/template finds it:
// a method first, then a struct field, then a map key.
func (c *fastCompiler) field(recv expr, name string, args []tparse.Node, final, dot kind) (kind, cmdFn) {
	hasArgs := len(args) > 0 || final != 0
	str := func(f func(d *Data) string) (kind, cmdFn) {
		if hasArgs {
			unsupportedf("arguments to field %s", name)
		}
		return kindString, func(d *Data, _ string, _ value) value { return value{kind: kindString, s: f(d)} }
	}
	switch recv.kinds {
	case kindData:
		switch name {
		case "Field":
			if lits, ok := literals(args, final); ok {
				return kindString, func(d *Data, _ string, _ value) value {
					return value{kind: kindString, s: d.Field(lits...)}
				}
			}
			get := c.stringArgs(name, args, final, dot, -1)
			return kindString, func(d *Data, dot string, final value) value {
				return value{kind: kindString, s: d.Field(get(d, dot, final)...)}
			}
		case "HasTag":
			get := c.stringArgs(name, args, final, dot, 1)
			return kindBool, func(d *Data, dot string, final value) value {
				return value{kind: kindBool, b: d.HasTag(get(d, dot, final)[0])}
			}
		}
		if f, ok := dataStrings[name]; ok {
			return str(f)
		}
		if hasArgs {
			unsupportedf("arguments to field %s", name)
		}
		switch name {
		case "Tags":
			return kindStrings, func(d *Data, _ string, _ value) value { return value{kind: kindStrings, ss: &d.Tags} }
		case "Labels":
			return kindLabels, func(d *Data, _ string, _ value) value { return value{kind: kindLabels, m: d.labels} }
		case "Time":
			return kindTime, func(d *Data, _ string, _ value) value { return value{kind: kindTime, t: &d.Time} }
		case "ReceivedAt":
			return kindTime, func(d *Data, _ string, _ value) value { return value{kind: kindTime, t: &d.ReceivedAt} }
		}
	case kindLabels:
		// A key of the map; missingkey=zero makes a missing one "".
		if hasArgs {
			unsupportedf("arguments to map key %s", name)
		}
		m, key := recv.eval, model.LabelName(name)
		return kindString, func(d *Data, dot string, _ value) value {
			return value{kind: kindString, s: string(m(d, dot).m[key])}
		}
	case kindTime:
		t := recv.eval
		switch name {
		case "Format":
			get := c.stringArgs(name, args, final, dot, 1)
			return kindString, func(d *Data, dot string, final value) value {
				tv := t(d, dot).t
				return value{kind: kindString, s: tv.Format(get(d, dot, final)[0])}
			}
		case "UTC":
			if hasArgs {
				unsupportedf("arguments to UTC")
			}
			return kindTime, func(d *Data, dot string, _ value) value {
				u := t(d, dot).t.UTC()
				return value{kind: kindTime, t: &u}
			}
		}
	}
	unsupportedf("field %s of %s", name, kindName(recv.kinds))
	return 0, nil
}

// literals returns args as strings when they are all string constants.
func literals(args []tparse.Node, final kind) ([]string, bool) {
	if final != 0 {
		return nil, false
	}
	lits := make([]string, len(args))
	for i, a := range args {
		s, ok := a.(*tparse.StringNode)
		if !ok {
			return nil, false
		}
		lits[i] = s.Text
	}
	return lits, true
}

// stringArgs compiles the string arguments of a call: n of them, or any
// number when n is -1.
func (c *fastCompiler) stringArgs(name string, args []tparse.Node, final, dot kind, n int) func(d *Data, dot string, final value) []string {
	get := c.args(args, final, dot)
	if n >= 0 && len(get) != n {
		unsupportedf("%s with %d arguments", name, len(get))
	}
	for _, a := range get {
		if a.kinds != kindString {
			unsupportedf("%s of %s", name, kindName(a.kinds))
		}
	}
	return func(d *Data, dot string, final value) []string {
		out := make([]string, len(get))
		for i, a := range get {
			out[i] = a.eval(d, dot, final).s
		}
		return out
	}
}

// argFn is an argument, or the value piped in.
type argFn struct {
	kinds kind
	eval  cmdFn
}

func (c *fastCompiler) args(args []tparse.Node, final, dot kind) []argFn {
	out := make([]argFn, 0, len(args)+1)
	for _, a := range args {
		e := c.arg(a, dot)
		out = append(out, argFn{e.kinds, func(d *Data, dot string, _ value) value { return e.eval(d, dot) }})
	}
	if final != 0 {
		out = append(out, argFn{final, func(_ *Data, _ string, final value) value { return final }})
	}
	return out
}

// call compiles a call of a function: a builtin of text/template's, or one
// of funcs of a type it knows. funcs shadow builtins, as in text/template.
func (c *fastCompiler) call(name string, args []tparse.Node, final, dot kind) (kind, cmdFn) {
	get := c.args(args, final, dot)
	fn, isUser := c.funcs[name]
	if !isUser {
		return c.builtin(name, get)
	}
	want := func(kinds ...kind) {
		if len(get) != len(kinds) {
			unsupportedf("%s with %d arguments", name, len(get))
		}
		for i, k := range kinds {
			if get[i].kinds&^k != 0 {
				unsupportedf("%s of %s", name, kindName(get[i].kinds))
			}
		}
	}
	str := func(s string) value { return value{kind: kindString, s: s} }
	switch f := fn.(type) {
	case func(string) string:
		want(kindString)
		a := get[0].eval
		return kindString, func(d *Data, dot string, final value) value { return str(f(a(d, dot, final).s)) }
	case func(string, string) string:
		want(kindString, kindString)
		a, b := get[0].eval, get[1].eval
		return kindString, func(d *Data, dot string, final value) value {
			x := a(d, dot, final).s
			return str(f(x, b(d, dot, final).s))
		}
	case func(string, string, string) string:
		want(kindString, kindString, kindString)
		a, b, e := get[0].eval, get[1].eval, get[2].eval
		return kindString, func(d *Data, dot string, final value) value {
			x := a(d, dot, final).s
			y := b(d, dot, final).s
			return str(f(x, y, e(d, dot, final).s))
		}
	case func([]string) string:
		// mitreTactics, mitreTechniques
		want(kindStrings)
		a := get[0].eval
		return kindString, func(d *Data, dot string, final value) value { return str(f(*a(d, dot, final).ss)) }
	case func([]string) []string:
		// sortAlpha
		want(kindStrings)
		a := get[0].eval
		return kindStrings, func(d *Data, dot string, final value) value {
			out := f(*a(d, dot, final).ss)
			return value{kind: kindStrings, ss: &out}
		}
	case func(string) (string, error):
		// urlUnescape
		want(kindString)
		a := get[0].eval
		return kindString, func(d *Data, dot string, final value) value {
			s, err := f(a(d, dot, final).s)
			if err != nil {
				panic(fallBack{err})
			}
			return str(s)
		}
	case func(string, string) (bool, error):
		// match
		want(kindString, kindString)
		a, b := get[0].eval, get[1].eval
		return kindBool, func(d *Data, dot string, final value) value {
			x := a(d, dot, final).s
			ok, err := f(x, b(d, dot, final).s)
			if err != nil {
				panic(fallBack{err})
			}
			return value{kind: kindBool, b: ok}
		}
	case func(string, any) (string, error):
		// join: the second argument goes in as the interface it is.
		want(kindString, kindString|kindBool|kindStrings)
		a, b := get[0].eval, get[1].eval
		return kindString, func(d *Data, dot string, final value) value {
			x := a(d, dot, final).s
			s, err := f(x, b(d, dot, final).iface())
			if err != nil {
				panic(fallBack{err})
			}
			return str(s)
		}
	}
	unsupportedf("function %s of type %T", name, fn)
	return 0, nil
}

// iface is the value as an interface, as text/template passes it to a
// function taking any.
func (v value) iface() any {
	switch v.kind {
	case kindString:
		return v.s
	case kindBool:
		return v.b
	}
	return *v.ss
}

func (c *fastCompiler) builtin(name string, get []argFn) (kind, cmdFn) {
	switch name {
	case "urlquery":
		// One string, as in a link: text/template escapes what
		// fmt.Sprint makes of its arguments, the string itself.
		if len(get) != 1 || get[0].kinds != kindString {
			unsupportedf("urlquery but of one string")
		}
		a := get[0].eval
		return kindString, func(d *Data, dot string, final value) value {
			return value{kind: kindString, s: url.QueryEscape(a(d, dot, final).s)}
		}
	case "and", "or":
		if len(get) == 0 {
			unsupportedf("%s without arguments", name)
		}
		var kinds kind
		for _, a := range get {
			kinds |= a.kinds
		}
		// Arguments are evaluated in order until one decides; the piped
		// value, if any, has been evaluated already.
		stop := name == "or"
		return kinds, func(d *Data, dot string, final value) value {
			var v value
			for _, a := range get {
				if v = a.eval(d, dot, final); v.truth() == stop {
					return v
				}
			}
			return v
		}
	case "not":
		if len(get) != 1 {
			unsupportedf("not with %d arguments", len(get))
		}
		a := get[0].eval
		return kindBool, func(d *Data, dot string, final value) value {
			return value{kind: kindBool, b: !a(d, dot, final).truth()}
		}
	case "eq", "ne":
		if len(get) < 2 || name == "ne" && len(get) != 2 {
			unsupportedf("%s with %d arguments", name, len(get))
		}
		k := get[0].kinds
		for _, a := range get {
			if a.kinds != k || k != kindString && k != kindBool {
				unsupportedf("%s of %s", name, kindName(a.kinds))
			}
		}
		neg := name == "ne"
		if len(get) == 2 {
			x, y := get[0].eval, get[1].eval
			return kindBool, func(d *Data, dot string, final value) value {
				v := x(d, dot, final)
				w := y(d, dot, final)
				return value{kind: kindBool, b: (v.s == w.s && v.b == w.b) != neg}
			}
		}
		return kindBool, func(d *Data, dot string, final value) value {
			// All arguments are evaluated before comparing.
			var vals [8]value
			vs := vals[:0]
			for _, a := range get {
				vs = append(vs, a.eval(d, dot, final))
			}
			eq := false
			for _, v := range vs[1:] {
				if v.s == vs[0].s && v.b == vs[0].b {
					eq = true
					break
				}
			}
			return value{kind: kindBool, b: eq != neg}
		}
	}
	unsupportedf("function %s", name)
	return 0, nil
}

func unsupportedf(format string, args ...any) {
	panic(unsupported(fmt.Sprintf(format, args...)))
}

func kindName(k kind) string {
	names := []string{"string", "bool", "[]string", "time.Time", "map[string]string", "*Data"}
	s := ""
	for i, n := range names {
		if k&(1<<i) != 0 {
			if s != "" {
				s += " or "
			}
			s += n
		}
	}
	return s
}
