package reconcile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// NewerJournalError is a journal written by a newer agent: after `bootc
// rollback` to an older image, the older agent in /usr meets the newer
// agent's state in the shared /var. It must not act on state it cannot
// read fully, nor overwrite it: the pass changes nothing, and the journal
// stays as it is until an agent that understands it runs again.
type NewerJournalError struct {
	Path    string
	Version int
}

func (e *NewerJournalError) Error() string {
	return fmt.Sprintf("journal %s was written by a newer agent (journal version %d; this agent understands %d): "+
		"this agent changes nothing on the host and leaves the journal as it is until an agent that understands it runs again "+
		"(boot the image with the newer agent, or move the journal away to start afresh and lose its quarantine and pending verification)",
		e.Path, e.Version, journalVersion)
}

// checkJournalVersion reads only the version, so that a journal of another
// version is recognized even when the rest of it would not decode.
func checkJournalVersion(path string, data []byte) error {
	var head struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return fmt.Errorf("read journal %s: it is not valid JSON (truncated or corrupt?): %w; the agent changes nothing until it is repaired or moved away", path, err)
	}
	switch {
	case head.Version == nil:
		return fmt.Errorf("read journal %s: it has no version; the agent changes nothing until it is repaired or moved away", path)
	case *head.Version > journalVersion:
		return &NewerJournalError{Path: path, Version: *head.Version}
	case *head.Version < journalVersion:
		// No agent ever wrote an older format: version 1 is the first.
		return fmt.Errorf("read journal %s: version %d is not a journal version any agent wrote; the agent changes nothing until it is repaired or moved away", path, *head.Version)
	}
	return nil
}

// keepUnknown returns fresh (v encoded by this agent) with the members of
// old (the file it was read from) that type t does not know put back, in
// every object both have: fields a newer agent added without a version
// bump survive an older agent's rewrite. Without unknown members, fresh is
// returned unchanged.
func keepUnknown(old, fresh []byte, t reflect.Type) ([]byte, error) {
	if len(old) == 0 {
		return fresh, nil
	}
	var o, f any
	if err := decodeNumbers(old, &o); err != nil {
		return fresh, nil // an unreadable old file has nothing to keep
	}
	if err := decodeNumbers(fresh, &f); err != nil {
		return nil, err
	}
	if !mergeUnknown(o, f, t) {
		return fresh, nil
	}
	return json.MarshalIndent(f, "", "  ")
}

func decodeNumbers(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

// mergeUnknown copies into fresh what old has and t does not know; it
// reports whether it copied anything.
func mergeUnknown(old, fresh any, t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	om, ok1 := old.(map[string]any)
	fm, ok2 := fresh.(map[string]any)
	if !ok1 || !ok2 {
		return false
	}
	changed := false
	switch t.Kind() {
	case reflect.Struct:
		fields := jsonFields(t)
		for k, ov := range om {
			ft, known := fields[k]
			fv, present := fm[k]
			switch {
			case !known && !present:
				fm[k], changed = ov, true
			case known && present:
				changed = mergeUnknown(ov, fv, ft) || changed
			}
		}
	case reflect.Map:
		for k, ov := range om {
			if fv, present := fm[k]; present {
				changed = mergeUnknown(ov, fv, t.Elem()) || changed
			}
		}
	}
	return changed
}

// jsonFields maps the JSON names of t's exported fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}
