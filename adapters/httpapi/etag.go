package httpapi

import (
	"strconv"
	"strings"

	"github.com/userservice/userservice/ports"
)

// etagOf is the ETag of a user at version: an opaque strong validator to
// clients, which parseIfMatch reads back.
func etagOf(version int64) string {
	return `"` + strconv.FormatInt(version, 10) + `"`
}

// parseIfMatch reads an If-Match header: "*", or a comma-separated list of
// entity tags. If-Match compares strongly (RFC 9110 §13.1.1), so a weak tag
// (W/"...") names no version, nor does a tag this service never sent: both
// match nothing, and a list of only such tags fails every write. An empty
// header is no precondition (nil).
func parseIfMatch(header string) *ports.IfMatch {
	if strings.TrimSpace(header) == "" {
		return nil
	}
	m := &ports.IfMatch{}
	for tag := range strings.SplitSeq(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" {
			m.Any = true
			continue
		}
		// Only the exact spelling etagOf gives: "03", W/"3" or 3 is no tag
		// of ours.
		if v, err := strconv.ParseInt(strings.Trim(tag, `"`), 10, 64); err == nil && etagOf(v) == tag {
			m.Versions = append(m.Versions, v)
		}
	}
	return m
}
