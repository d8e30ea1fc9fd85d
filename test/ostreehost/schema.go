package ostreehost

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

var statusSchema struct {
	once   sync.Once
	schema *jsonschema.Schema
	err    error
}

// schemaPath is bootc's JSON Schema for `bootc status`, kept with the
// status fixtures in apply/bootc.
func schemaPath() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "../../apply/bootc/testdata/bootc-status/host-v1.schema.json")
}

// ValidateStatus checks a `bootc status --format=json` document against
// bootc's JSON Schema (host-v1.schema.json, draft 2020-12).
func ValidateStatus(doc []byte) error {
	statusSchema.once.Do(func() {
		data, err := os.ReadFile(schemaPath())
		if err != nil {
			statusSchema.err = fmt.Errorf("read bootc's status schema: %w", err)
			return
		}
		s, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			statusSchema.err = fmt.Errorf("parse bootc's status schema: %w", err)
			return
		}
		c := jsonschema.NewCompiler()
		if err := c.AddResource("host-v1.schema.json", s); err != nil {
			statusSchema.err = err
			return
		}
		statusSchema.schema, statusSchema.err = c.Compile("host-v1.schema.json")
	})
	if statusSchema.err != nil {
		return statusSchema.err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("status is not JSON: %w", err)
	}
	return statusSchema.schema.Validate(inst)
}
