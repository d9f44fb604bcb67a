package alerting

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	tmpltext "text/template"

	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/template"
	"go.yaml.in/yaml/v2"
)

// Upstream's config errors often say what is wrong but not where ("bad
// matcher format: ...", "no Slack API URL nor App token set ..."), and
// templated fields such as a Slack title are parsed only when a
// notification is rendered, so a typo surfaces as a failed notification
// hours later. The helpers here add the location (a YAML path such as
// route.routes[0].matchers) and refuse unparsable templated fields at load
// time. They never accept what upstream refuses: they only run upstream's
// own loader on pieces of the file.

// locateError finds the part of an alertmanager.yml that upstream refuses,
// as a YAML path, by loading each receiver, route node and inhibition
// rule alone inside an otherwise valid stub. It returns "" when it cannot
// narrow the error down (a YAML syntax error, a bad global section).
func locateError(raw []byte) string {
	var doc yaml.MapSlice
	if yaml.Unmarshal(raw, &doc) != nil {
		return ""
	}
	var base yaml.MapSlice
	for _, it := range doc {
		switch it.Key {
		case "global", "templates", "time_intervals", "mute_time_intervals":
			base = append(base, it)
		}
	}
	const stub = "pharos-locate-stub"
	stubRcv := yaml.MapSlice{{Key: "name", Value: stub}}
	load := func(route yaml.MapSlice, receivers []any, inhibit []any) error {
		d := append(slices.Clone(base), yaml.MapItem{Key: "route", Value: route}, yaml.MapItem{Key: "receivers", Value: receivers})
		if inhibit != nil {
			d = append(d, yaml.MapItem{Key: "inhibit_rules", Value: inhibit})
		}
		out, err := yaml.Marshal(d)
		if err != nil {
			return err
		}
		_, err = loadUpstream(string(out))
		return err
	}
	stubRoute := yaml.MapSlice{{Key: "receiver", Value: stub}}
	if load(stubRoute, []any{stubRcv}, nil) != nil {
		return ""
	}

	names := map[string]bool{}
	for _, r := range asList(lookup(doc, "receivers")) {
		if m, ok := r.(yaml.MapSlice); ok {
			names[fmt.Sprint(lookup(m, "name"))] = true
		}
	}
	for i, r := range asList(lookup(doc, "receivers")) {
		m, _ := r.(yaml.MapSlice)
		name := fmt.Sprint(lookup(m, "name"))
		route := yaml.MapSlice{{Key: "receiver", Value: name}}
		if load(route, []any{r}, nil) == nil {
			continue
		}
		path := fmt.Sprintf("receivers[%d] (%q)", i, name)
		for _, it := range m {
			key := fmt.Sprint(it.Key)
			if !strings.HasSuffix(key, "_configs") {
				continue
			}
			for j, e := range asList(it.Value) {
				one := yaml.MapSlice{{Key: "name", Value: name}, {Key: key, Value: []any{e}}}
				if load(route, []any{one}, nil) != nil {
					return fmt.Sprintf("%s.%s[%d]", path, key, j)
				}
			}
		}
		return path
	}

	if root, ok := lookup(doc, "route").(yaml.MapSlice); ok {
		if p := locateRoute(root, "route", true, names, func(r yaml.MapSlice) error { return load(r, []any{stubRcv}, nil) }, stub); p != "" {
			return p
		}
	}
	for i, rule := range asList(lookup(doc, "inhibit_rules")) {
		if load(stubRoute, []any{stubRcv}, []any{rule}) != nil {
			return fmt.Sprintf("inhibit_rules[%d]", i)
		}
	}
	return ""
}

// locateRoute checks one route node and its children; load loads a root
// route built around the node's settings.
func locateRoute(node yaml.MapSlice, path string, isRoot bool, receivers map[string]bool, load func(yaml.MapSlice) error, stub string) string {
	if r := lookup(node, "receiver"); r != nil && !receivers[fmt.Sprint(r)] {
		return path + ".receiver"
	}
	// The node's own settings, keys one at a time, under a stub receiver;
	// a child goes under a stub root, since matchers are refused on a root.
	for _, it := range node {
		key := fmt.Sprint(it.Key)
		if key == "routes" || key == "receiver" {
			continue
		}
		own := yaml.MapSlice{{Key: "receiver", Value: stub}, it}
		route := own
		if !isRoot {
			route = yaml.MapSlice{{Key: "receiver", Value: stub}, {Key: "routes", Value: []any{own}}}
		}
		if load(route) != nil {
			return path + "." + key
		}
	}
	for i, child := range asList(lookup(node, "routes")) {
		if m, ok := child.(yaml.MapSlice); ok {
			if p := locateRoute(m, fmt.Sprintf("%s.routes[%d]", path, i), false, receivers, load, stub); p != "" {
				return p
			}
		}
	}
	return ""
}

func lookup(m yaml.MapSlice, key string) any {
	for _, it := range m {
		if it.Key == key {
			return it.Value
		}
	}
	return nil
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// checkTemplates parses every templated string of every receiver (a
// plain string field containing "{{") with the functions notifications
// are rendered with, and names the first field that does not parse.
// Parsing, not executing: references to named templates and to alert data
// are only resolved when a notification is rendered, as upstream does.
func checkTemplates(c *config.Config) error {
	for i, r := range c.Receivers {
		path := fmt.Sprintf("receivers[%d] (%q)", i, r.Name)
		err := walkStrings(reflect.ValueOf(r), path, func(p, s string) error {
			if _, err := tmpltext.New("").Funcs(tmpltext.FuncMap(template.DefaultFuncs)).Parse(s); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

var stringType = reflect.TypeFor[string]()

// walkStrings calls f for each plain string holding a template action,
// naming it by YAML path. Named string types (secrets) are not templates.
func walkStrings(v reflect.Value, path string, f func(path, s string) error) error {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return walkStrings(v.Elem(), path, f)
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			sf := t.Field(i)
			if !sf.IsExported() {
				continue
			}
			name := strings.Split(sf.Tag.Get("yaml"), ",")[0]
			if name == "-" {
				continue
			}
			p := path
			if name != "" {
				p = path + "." + name
			} else if !sf.Anonymous {
				continue // not part of the YAML
			}
			if err := walkStrings(v.Field(i), p, f); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if err := walkStrings(v.Index(i), fmt.Sprintf("%s[%d]", path, i), f); err != nil {
				return err
			}
		}
	case reflect.Map:
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
		for _, k := range keys {
			if err := walkStrings(v.MapIndex(k), fmt.Sprintf("%s.%v", path, k), f); err != nil {
				return err
			}
		}
	case reflect.String:
		if v.Type() == stringType && strings.Contains(v.String(), "{{") {
			return f(path, v.String())
		}
	}
	return nil
}

// CheckConfigFile loads an alertmanager.yml as the notifier does, for
// `pharos -config.verify`: upstream's loader plus the location of what it
// refuses, and never a panic.
func CheckConfigFile(file string) error {
	_, err := parseConfigFile(file, nil)
	return err
}

// loadUpstream is config.Load, and loadFileUpstream config.LoadFile, with a
// panic of the upstream loader turned into an error. Upstream dereferences
// list entries it expects to be present: `routes: [null]` panics in its
// receiver check (alertmanager v0.34.2), and a tenant's config must not take
// its request, or a reload the process, down with it.
func loadUpstream(s string) (*config.Config, error) {
	return recoverLoad(func() (*config.Config, error) { return config.Load(s) })
}

func loadFileUpstream(file string) (*config.Config, error) {
	return recoverLoad(func() (*config.Config, error) { return config.LoadFile(file) })
}

func recoverLoad(load func() (*config.Config, error)) (c *config.Config, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("invalid configuration: the alertmanager loader failed on it (%v); look for an empty entry in a list, such as a null route in route.routes", r)
		}
	}()
	return load()
}
