package config

import "reflect"

// RestartOnly returns the keys of the settings tagged reload:"restart"
// whose values differ between was and now, in the order of the Config
// tree: what a reload from was to now leaves as it was.
func RestartOnly(was, now *Config) []string {
	var out []string
	for _, f := range restartFields() {
		if !reflect.DeepEqual(reflect.ValueOf(was).Elem().FieldByIndex(f.index).Interface(),
			reflect.ValueOf(now).Elem().FieldByIndex(f.index).Interface()) {
			out = append(out, f.key)
		}
	}
	return out
}

type restartField struct {
	key   string
	index []int
}

// restartFields lists the fields of the Config sections tagged
// reload:"restart", each with its key.
func restartFields() []restartField {
	var out []restartField
	top := reflect.TypeFor[Config]()
	for i := range top.NumField() {
		section := top.Field(i)
		if section.Type.Kind() != reflect.Struct {
			continue
		}
		for j := range section.Type.NumField() {
			f := section.Type.Field(j)
			if f.Tag.Get("reload") != "restart" {
				continue
			}
			out = append(out, restartField{key: yamlName(section) + "." + yamlName(f), index: []int{i, j}})
		}
	}
	return out
}
