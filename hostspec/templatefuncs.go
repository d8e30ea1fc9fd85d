package hostspec

import (
	"errors"
	"fmt"
	"reflect"
)

// templateFuncs replaces text/template's index: the built-in returns the
// zero value for a missing map key, which missingkey=error does not cover,
// so {{index .Vars.m "missing"}} would write "<no value>" into a file.
// Here a missing key is an error naming it, like .Vars.m.missing is.
var templateFuncs = map[string]any{"index": strictIndex}

// strictIndex is index with missing map keys as errors: the item of a map,
// slice, array or string at each key in turn.
func strictIndex(item reflect.Value, keys ...reflect.Value) (reflect.Value, error) {
	item = indirectInterface(item)
	if !item.IsValid() {
		return reflect.Value{}, errors.New("index of untyped nil")
	}
	for _, key := range keys {
		key = indirectInterface(key)
		switch item.Kind() {
		case reflect.Map:
			if !key.IsValid() || !key.Type().AssignableTo(item.Type().Key()) {
				return reflect.Value{}, fmt.Errorf("index: key %v is not a %s", key, item.Type().Key())
			}
			v := item.MapIndex(key)
			if !v.IsValid() {
				return reflect.Value{}, fmt.Errorf("map has no entry for key %q", fmt.Sprint(key.Interface()))
			}
			item = v
		case reflect.Slice, reflect.Array, reflect.String:
			i, err := indexArg(key, item.Len())
			if err != nil {
				return reflect.Value{}, err
			}
			item = item.Index(i)
		case reflect.Invalid:
			return reflect.Value{}, errors.New("index of nil")
		default:
			return reflect.Value{}, fmt.Errorf("can't index item of type %s", item.Type())
		}
		item = indirectInterface(item)
	}
	return item, nil
}

func indexArg(key reflect.Value, n int) (int, error) {
	var i int64
	switch {
	case !key.IsValid():
		return 0, errors.New("index of nil")
	case key.CanInt():
		i = key.Int()
	case key.CanUint():
		if key.Uint() > uint64(n) {
			return 0, fmt.Errorf("index out of range: %d", key.Uint())
		}
		i = int64(key.Uint())
	default:
		return 0, fmt.Errorf("cannot index slice/array with type %s", key.Type())
	}
	if i < 0 || i >= int64(n) {
		return 0, fmt.Errorf("index out of range: %d", i)
	}
	return int(i), nil
}

// indirectInterface unwraps interface values (map[string]any elements).
func indirectInterface(v reflect.Value) reflect.Value {
	for v.IsValid() && v.Kind() == reflect.Interface {
		if v.IsNil() {
			return reflect.Value{}
		}
		v = v.Elem()
	}
	return v
}
