package fleetdiff

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync/atomic"

	"github.com/bootsync/bootsync/internal/boundedread"
)

// DefaultInlineLimit is the largest file whose changes are shown as a
// line diff: larger ones are summarised by size and digest. Computing a
// line diff grows faster than linearly (256 KiB: under 0.1 s; 1 MiB: ~1 s;
// 20 MiB: minutes), and nobody reviews a diff that size in a pull request.
const DefaultInlineLimit = 256 << 10

// DefaultReportLimit bounds the diff text of a whole report: once the
// diffs shown add up to this, later ones (in host order) are summarised,
// so a change that touches a large file on every host of a big fleet
// cannot exhaust the CI runner's memory.
const DefaultReportLimit = 32 << 20

// Why a file's diff is not shown (FileChange.Omitted).
const (
	OmittedSize        = "size"         // a side is larger than the inline limit
	OmittedReportLimit = "report-limit" // the report already shows as much diff text as it may
)

// UnifiedDiff is a diff -u of a file's two versions; hasBase and hasHead
// say whether each side exists (a missing side is /dev/null). A side larger
// than DefaultInlineLimit gives a one-line summary instead.
func UnifiedDiff(p string, base, head []byte, hasBase, hasHead bool) string {
	if d, ok := summaryIfLarge(base, head, DefaultInlineLimit); ok {
		return d
	}
	return unifiedDiff(p, base, head, hasBase, hasHead)
}

// summaryIfLarge summarises a change whose sides are too large to diff.
func summaryIfLarge(base, head []byte, limit int64) (string, bool) {
	if int64(len(base)) <= limit && int64(len(head)) <= limit {
		return "", false
	}
	return sizeSummary(int64(len(base)), sha(base), int64(len(head)), sha(head),
		fmt.Sprintf("larger than the %s shown inline", boundedread.FormatSize(limit))), true
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func sizeSummary(baseSize int64, baseSHA string, headSize int64, headSHA, why string) string {
	side := func(size int64, digest string) string {
		if digest == "" {
			return "(none)"
		}
		return fmt.Sprintf("%s (%d bytes, sha256 %.12s)", boundedread.FormatSize(size), size, digest)
	}
	return fmt.Sprintf("Diff not shown, %s: %s -> %s\n", why, side(baseSize, baseSHA), side(headSize, headSHA))
}

// diffBudget is what is left of the report's diff text.
type diffBudget struct {
	inline int64 // per side; <= 0: DefaultInlineLimit
	report int64 // for the report; <= 0: DefaultReportLimit
	used   atomic.Int64
}

func (b *diffBudget) inlineLimit() int64 {
	if b == nil || b.inline <= 0 {
		return DefaultInlineLimit
	}
	return b.inline
}

func (b *diffBudget) reportLimit() int64 {
	if b == nil || b.report <= 0 {
		return DefaultReportLimit
	}
	return b.report
}

// fileDiff fills in fc.Diff, or a summary when a side is too large or the
// report is full. Memory is guarded while hosts are compared in parallel
// (at most twice the report limit is ever held); which diffs are shown is
// settled in host order afterwards (trimReport).
func (b *diffBudget) fileDiff(fc *FileChange, base, head []byte, hasBase, hasHead bool) {
	fc.baseLen, fc.headLen = int64(len(base)), int64(len(head))
	if int64(len(base)) > b.inlineLimit() || int64(len(head)) > b.inlineLimit() {
		b.omit(fc, OmittedSize, fmt.Sprintf("larger than the %s shown inline", boundedread.FormatSize(b.inlineLimit())))
		return
	}
	if b.used.Load() > 2*b.reportLimit() {
		b.omit(fc, OmittedReportLimit, b.reportWhy())
		return
	}
	fc.Diff = unifiedDiff(fc.Path, base, head, hasBase, hasHead)
	b.used.Add(int64(len(fc.Diff)))
}

func (b *diffBudget) reportWhy() string {
	return fmt.Sprintf("the report already shows %s of diffs", boundedread.FormatSize(b.reportLimit()))
}

func (b *diffBudget) omit(fc *FileChange, reason, why string) {
	fc.Omitted, fc.BaseSize, fc.HeadSize = reason, fc.baseLen, fc.headLen
	fc.Diff = sizeSummary(fc.BaseSize, fc.BaseSHA256, fc.HeadSize, fc.HeadSHA256, why)
}

// trimReport summarises, in host order, every diff after the report's
// diff text reached its limit, so the same revisions give the same report.
func (b *diffBudget) trimReport(hosts []*HostChange) {
	var total int64
	full := false
	for _, hc := range hosts {
		if hc == nil {
			continue
		}
		for i := range hc.Files {
			fc := &hc.Files[i]
			if fc.Omitted == OmittedSize || fc.Diff == "" || fc.Secret != "" {
				continue
			}
			if !full && fc.Omitted == "" && total+int64(len(fc.Diff)) <= b.reportLimit() {
				total += int64(len(fc.Diff))
				continue
			}
			full = true
			if fc.Omitted == "" {
				b.omit(fc, OmittedReportLimit, b.reportWhy())
			}
		}
	}
}
