package main

// Strict JSON decoding for the spec and the control API's requests: every problem is reported
// (an unknown field, a value of the wrong type), each naming where it is, e.g.
// `parents[0].thin: must be true or false, got string`, and the rest still decodes.

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// problems collects what is wrong, one sentence each.
type problems []string

func (p *problems) add(format string, args ...interface{}) {
	*p = append(*p, fmt.Sprintf(format, args...))
}

// err is nil without problems, else a problemList.
func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return problemList(p)
}

// problemList is an error made of several problems (one line each on clones-lab's stderr).
type problemList []string

func (e problemList) Error() string { return strings.Join(e, "; ") }

var unmarshalerType = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()

// decodeObject decodes the JSON object data into the struct out points to, key by key (json tags
// name the keys; keys starting with "_", such as "_comment", are ignored). where names the object
// in problems ("" for the top of a document, whose problems name just the key).
func decodeObject(where string, data json.RawMessage, out interface{}, p *problems) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		p.add("%s: must be an object", nameOr(where, "spec"))
		return
	}
	v := reflect.ValueOf(out).Elem()
	fields, allowed := jsonFields(v.Type())
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		i, ok := fields[key]
		if !ok {
			if strings.HasPrefix(key, "_") {
				continue
			}
			if len(allowed) == 0 {
				p.add("%s: unknown field %q (it takes none)", nameOr(where, "spec"), key)
			} else {
				p.add("%s: unknown field %q (allowed: %s)", nameOr(where, "spec"), key, strings.Join(allowed, ", "))
			}
			continue
		}
		path := key
		if where != "" {
			path = where + "." + key
		}
		decodeValue(path, raw[key], v.Field(i).Addr().Interface(), p)
	}
}

// decodeValue decodes data into out: objects key by key, lists of objects item by item, anything
// else (a json.Unmarshaler included) whole.
func decodeValue(where string, data json.RawMessage, out interface{}, p *problems) {
	v := reflect.ValueOf(out).Elem()
	t := v.Type()
	custom := reflect.PtrTo(t).Implements(unmarshalerType)
	switch {
	case !custom && t.Kind() == reflect.Struct:
		decodeObject(where, data, out, p)
	case !custom && t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		var items []json.RawMessage
		if err := json.Unmarshal(data, &items); err != nil {
			p.add("%s: must be a list of objects", where)
			return
		}
		list := reflect.MakeSlice(t, len(items), len(items))
		for i, item := range items {
			decodeObject(fmt.Sprintf("%s[%d]", where, i), item, list.Index(i).Addr().Interface(), p)
		}
		v.Set(list)
	default:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			v.Set(reflect.Zero(t)) // replaced, never merged into (the old one may be shared)
		}
		if err := json.Unmarshal(data, out); err != nil {
			p.add("%s: %s", where, typeProblem(err))
		}
	}
}

// jsonFields maps a struct's JSON keys to field indexes; allowed lists the keys in order.
func jsonFields(t reflect.Type) (map[string]int, []string) {
	fields := map[string]int{}
	var allowed []string
	for i := 0; i < t.NumField(); i++ {
		name := strings.Split(t.Field(i).Tag.Get("json"), ",")[0]
		if name == "" || name == "-" || t.Field(i).PkgPath != "" {
			continue
		}
		fields[name] = i
		allowed = append(allowed, name)
	}
	return fields, allowed
}

// typeProblem says what a value should have been.
func typeProblem(err error) string {
	te, ok := err.(*json.UnmarshalTypeError)
	if !ok {
		return err.Error()
	}
	return fmt.Sprintf("must be %s, got %s", kindName(te.Type), te.Value)
}

func kindName(t reflect.Type) string {
	for t.Kind() == reflect.Ptr {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(kindName(t.Elem()), "a "), "an ") + "s"
	default:
		return "an object"
	}
}

func nameOr(name, fallback string) string {
	if name == "" {
		return fallback
	}
	return name
}
