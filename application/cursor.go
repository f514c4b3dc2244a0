package application

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"

	"github.com/userservice/userservice/domain"
)

// A page cursor is base64url(payload || tag). The payload holds a format
// version, the next page's number and size, and the last item's sort key; the
// tag is HMAC-SHA256, truncated to 128 bits, over a purpose label, the
// canonical sort and filter, and the payload. The sort and filter are not
// stored, only bound: the request must repeat them, and a cursor presented
// with another sort or filter fails authentication like a forged one.
// crypto/hmac and encoding/binary are all this takes; a signed-token
// library would have to sit behind a port and would bring a larger format.

const (
	cursorVersion = 1
	cursorTagLen  = 16
	cursorPurpose = "userservice/users-page"
)

var errInvalidCursor = domain.Errorf(domain.KindMalformed, "invalid_cursor", "invalid cursor")

// cursor is where the next page starts.
type cursor struct {
	page  int
	size  int
	after domain.SortKey
}

func encodeCursor(key []byte, c cursor, sort domain.Sort, binding []string) string {
	b := []byte{cursorVersion}
	b = binary.AppendUvarint(b, uint64(c.page))
	b = binary.AppendUvarint(b, uint64(c.size))
	b = binary.AppendVarint(b, c.after.ID)
	switch sort.Field {
	case domain.SortEmail, domain.SortLastName:
		b = binary.AppendUvarint(b, uint64(len(c.after.Text)))
		b = append(b, c.after.Text...)
	case domain.SortCreatedAt:
		b = binary.AppendVarint(b, c.after.Time.Unix())
		b = binary.AppendUvarint(b, uint64(c.after.Time.Nanosecond()))
	}
	b = append(b, cursorTag(key, b, binding)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor authenticates s for sort and f and reads it. Whatever is
// wrong with it (not base64, truncated, tampered, another key, sort or
// filter) gives the same errInvalidCursor.
func decodeCursor(key []byte, s string, sort domain.Sort, binding []string) (cursor, error) {
	// Strict, and the length check, because the decoder would otherwise skip
	// newlines and ignore stray trailing bits: one cursor, one spelling.
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || base64.RawURLEncoding.EncodedLen(len(raw)) != len(s) || len(raw) < 1+cursorTagLen {
		return cursor{}, errInvalidCursor
	}
	payload, tag := raw[:len(raw)-cursorTagLen], raw[len(raw)-cursorTagLen:]
	if !hmac.Equal(tag, cursorTag(key, payload, binding)) || payload[0] != cursorVersion {
		return cursor{}, errInvalidCursor
	}
	r := cursorReader{b: payload[1:]}
	c := cursor{page: r.count(), size: r.count()}
	c.after.ID = read(&r, binary.Varint)
	switch sort.Field {
	case domain.SortEmail, domain.SortLastName:
		c.after.Text = r.text()
	case domain.SortCreatedAt:
		sec := read(&r, binary.Varint)
		nsec := r.count()
		if nsec >= int(time.Second) {
			r.bad = true
		}
		c.after.Time = time.Unix(sec, int64(nsec)).UTC()
	}
	if r.bad || len(r.b) != 0 || c.page < 2 || c.size < 1 || c.size > maxPageSize {
		return cursor{}, errInvalidCursor
	}
	return c, nil
}

// usersBinding is what a users-page cursor is bound to: its purpose, the sort
// and the canonical filter.
func usersBinding(sort domain.Sort, f domain.Filter) []string {
	p := f.Params()
	b := []string{cursorPurpose, sort.String(), p.FirstName, p.LastName, p.Email, p.Gender, p.Role, p.IPAddress}
	if p.EmailExact != "" {
		// Only when set, so the cursors issued before it existed still
		// work; the length prefixes keep the two shapes apart.
		b = append(b, p.EmailExact)
	}
	return b
}

// cursorTag authenticates payload together with binding (length-prefixed, so
// no two bindings share an encoding).
func cursorTag(key, payload []byte, binding []string) []byte {
	m := hmac.New(sha256.New, key)
	for _, s := range binding {
		var n [binary.MaxVarintLen64]byte
		m.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		m.Write([]byte(s))
	}
	m.Write(payload)
	return m.Sum(nil)[:cursorTagLen]
}

// cursorReader reads the payload, remembering the first failure so
// decodeCursor checks once.
type cursorReader struct {
	b   []byte
	bad bool
}

// read takes one varint off r with binary.Uvarint or binary.Varint.
func read[T uint64 | int64](r *cursorReader, decode func([]byte) (T, int)) T {
	v, n := decode(r.b)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a non-negative int, bounded so a page number cannot wrap.
func (r *cursorReader) count() int {
	v := read(r, binary.Uvarint)
	if v > 1<<31 {
		r.bad = true
		return 0
	}
	return int(v)
}

func (r *cursorReader) text() string {
	n := read(r, binary.Uvarint)
	if r.bad || n > uint64(len(r.b)) {
		r.bad = true
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
