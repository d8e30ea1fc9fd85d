package bootc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"
)

// SignatureKind names a variant of bootc's ImageSignature union.
type SignatureKind string

// Signature kinds bootc knows.
const (
	// SignatureContainerPolicy: the deployment was made with
	// --enforce-container-sigpolicy; bootc refuses a policy.json whose
	// default is insecureAcceptAnything.
	SignatureContainerPolicy SignatureKind = "containerPolicy"
	// SignatureInsecure: no verification. Accepted on input, not printed by
	// current bootc.
	SignatureInsecure SignatureKind = "insecure"
	// SignatureOstreeRemote: legacy verification through an ostree remote
	// (removed in bootc 1.1.5).
	SignatureOstreeRemote SignatureKind = "ostreeRemote"
)

// ImageSignature is bootc's signature union. In JSON it is the string
// "containerPolicy" or "insecure", or the object {"ostreeRemote":"<remote>"};
// in YAML the last one may also be the tagged scalar `!ostreeRemote <remote>`.
//
// A string variant this package does not know is kept verbatim in Kind, so
// a newer bootc that adds one does not make status unreadable.
type ImageSignature struct {
	Kind SignatureKind
	// OstreeRemote is the remote name when Kind is SignatureOstreeRemote.
	OstreeRemote string
}

// String renders the signature as bootc's JSON would, without quotes for
// the string forms.
func (s ImageSignature) String() string {
	if s.Kind == SignatureOstreeRemote {
		return string(s.Kind) + "=" + s.OstreeRemote
	}
	return string(s.Kind)
}

// MarshalJSON writes exactly bootc's forms.
func (s ImageSignature) MarshalJSON() ([]byte, error) {
	switch s.Kind {
	case "":
		return nil, errors.New("marshal bootc image signature: empty kind")
	case SignatureOstreeRemote:
		return json.Marshal(map[string]string{string(SignatureOstreeRemote): s.OstreeRemote})
	default:
		return json.Marshal(string(s.Kind))
	}
}

// UnmarshalJSON reads the string and object forms.
func (s *ImageSignature) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if bytes.Equal(data, []byte("null")) {
		*s = ImageSignature{}
		return nil
	}
	if len(data) > 0 && data[0] == '"' {
		var str string
		if err := json.Unmarshal(data, &str); err != nil {
			return fmt.Errorf("bootc image signature: %w", err)
		}
		return s.setString(str)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return fmt.Errorf("bootc image signature %s: want a string or an object: %w", data, err)
	}
	raw, ok := obj[string(SignatureOstreeRemote)]
	if !ok || len(obj) != 1 {
		return fmt.Errorf("bootc image signature %s: unsupported form (want \"containerPolicy\", \"insecure\" or {\"ostreeRemote\":\"…\"})", data)
	}
	var remote string
	if err := json.Unmarshal(raw, &remote); err != nil {
		return fmt.Errorf("bootc image signature %s: ostreeRemote must be a string: %w", data, err)
	}
	*s = ImageSignature{Kind: SignatureOstreeRemote, OstreeRemote: remote}
	return nil
}

// MarshalYAML writes the string forms as plain strings and the ostree
// remote form as serde_yaml does: `!ostreeRemote <remote>`.
func (s ImageSignature) MarshalYAML() (any, error) {
	switch s.Kind {
	case "":
		return nil, errors.New("marshal bootc image signature: empty kind")
	case SignatureOstreeRemote:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!" + string(SignatureOstreeRemote), Value: s.OstreeRemote}, nil
	default:
		return string(s.Kind), nil
	}
}

// UnmarshalYAML reads plain strings, `!ostreeRemote <remote>` and the
// mapping {ostreeRemote: <remote>}.
func (s *ImageSignature) UnmarshalYAML(node *yaml.Node) error {
	switch node.Kind {
	case yaml.ScalarNode:
		switch node.Tag {
		case "!" + string(SignatureOstreeRemote):
			*s = ImageSignature{Kind: SignatureOstreeRemote, OstreeRemote: node.Value}
			return nil
		case "!!str", "":
			return s.setString(node.Value)
		default:
			return fmt.Errorf("bootc image signature at line %d: unsupported tag %s", node.Line, node.Tag)
		}
	case yaml.MappingNode:
		var obj map[string]string
		if err := node.Decode(&obj); err != nil {
			return fmt.Errorf("bootc image signature at line %d: %w", node.Line, err)
		}
		remote, ok := obj[string(SignatureOstreeRemote)]
		if !ok || len(obj) != 1 {
			return fmt.Errorf("bootc image signature at line %d: unsupported form (want containerPolicy, insecure or ostreeRemote)", node.Line)
		}
		*s = ImageSignature{Kind: SignatureOstreeRemote, OstreeRemote: remote}
		return nil
	default:
		return fmt.Errorf("bootc image signature at line %d: want a string or a mapping", node.Line)
	}
}

func (s *ImageSignature) setString(str string) error {
	switch str {
	case "":
		return errors.New("bootc image signature: empty string")
	case string(SignatureOstreeRemote):
		return errors.New("bootc image signature: ostreeRemote needs a remote name")
	}
	*s = ImageSignature{Kind: SignatureKind(str)}
	return nil
}
