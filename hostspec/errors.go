package hostspec

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem in a fleet repository, located at the file, line and
// column of the YAML node (or template) that caused it.
type Error struct {
	File   string `json:"file"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
	// Field is the path of the offending value inside its document, such as
	// "spec.etc[1].mode"; empty when the problem is about the whole file.
	Field string `json:"field,omitempty"`
	// Host is set when the problem only shows when resolving that host
	// (a template that fails for it, a conflict between its layers).
	Host string `json:"host,omitempty"`
	Msg  string `json:"message"`
	// Limit names the limit the problem exceeds (fileSize, templateSteps,
	// …; see Limits); empty for other problems.
	Limit string `json:"limit,omitempty"`
}

// Error renders "file:line:col: field: msg", leaving out the parts that are
// unknown, and names the host for host-specific problems.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
		if e.Column > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Column))
		}
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	if e.Host != "" {
		b.WriteString("host ")
		b.WriteString(e.Host)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found, sorted by file, line and column. A
// function that returns one as an error never returns an empty list.
type ErrorList []*Error

// Error renders one problem per line.
func (l ErrorList) Error() string {
	switch len(l) {
	case 0:
		return "no errors"
	case 1:
		return l[0].Error()
	}
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap lets errors.As find the individual problems.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

// Sort orders the list by file, line, column, then host, field and message,
// so output is stable.
func (l ErrorList) Sort() {
	slices.SortStableFunc(l, compareErrors)
}

func compareErrors(a, b *Error) int {
	return cmp.Or(
		cmp.Compare(a.File, b.File),
		cmp.Compare(a.Line, b.Line),
		cmp.Compare(a.Column, b.Column),
		cmp.Compare(a.Host, b.Host),
		cmp.Compare(a.Field, b.Field),
		cmp.Compare(a.Msg, b.Msg),
	)
}

// err returns the sorted list as an error, or nil when it is empty (a nil
// ErrorList in an error interface would not be == nil).
func (l ErrorList) err() error {
	if len(l) == 0 {
		return nil
	}
	l.Sort()
	return l
}
