package httpapi

import (
	"reflect"
	"testing"

	"github.com/userservice/userservice/ports"
)

func TestETagRoundTrip(t *testing.T) {
	t.Parallel()
	for _, v := range []int64{1, 2, 1 << 40} {
		got := parseIfMatch(etagOf(v))
		if want := (&ports.IfMatch{Versions: []int64{v}}); !reflect.DeepEqual(got, want) {
			t.Errorf("If-Match %s: %+v, want %+v", etagOf(v), got, want)
		}
	}
}

func TestParseIfMatch(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		header string
		want   *ports.IfMatch
	}{
		{"", nil},
		{"  ", nil},
		{"*", &ports.IfMatch{Any: true}},
		{`"3"`, &ports.IfMatch{Versions: []int64{3}}},
		{` "3" , "7",*`, &ports.IfMatch{Any: true, Versions: []int64{3, 7}}},
		// If-Match compares strongly: a weak tag names nothing.
		{`W/"3"`, &ports.IfMatch{}},
		// Not a tag this service sends: matches nothing, never an error.
		{`"03"`, &ports.IfMatch{}},
		{`"+3"`, &ports.IfMatch{}},
		{`3`, &ports.IfMatch{}},
		{`"3`, &ports.IfMatch{}},
		{`"9d2f6c0e5a1b4c7d8e9f0a1b2c3d4e5f"`, &ports.IfMatch{}},
		{`"99999999999999999999"`, &ports.IfMatch{}},
	} {
		if got := parseIfMatch(tt.header); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("If-Match %q: %+v, want %+v", tt.header, got, tt.want)
		}
	}
}
