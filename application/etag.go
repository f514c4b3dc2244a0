package application

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strings"

	"github.com/userservice/userservice/domain"
)

// ETag is the user's entity tag, a quoted strong validator: the HTTP adapter
// sends it as the ETag header and UpdateProfile compares If-Match with it.
//
// It digests every field a change of the user sets (updated_at included), so
// it changes with any change, and the profile and role even within one
// microsecond. The password hash and the token version are left out: they
// also change by internal bookkeeping (a hash upgraded at login, tokens
// invalidated after a refresh token was replayed), which is no change of the
// user, while a password change sets updated_at.
func ETag(u *domain.User) string {
	s := u.Stored()
	h := sha256.New()
	var num [8]byte
	writeInt := func(n int64) {
		binary.BigEndian.PutUint64(num[:], uint64(n))
		h.Write(num[:])
	}
	writeStr := func(v string) {
		writeInt(int64(len(v)))
		h.Write([]byte(v))
	}
	writeInt(s.ID)
	writeStr(s.FirstName)
	writeStr(s.LastName)
	writeStr(s.Email)
	writeStr(s.Gender)
	writeStr(s.IPAddress)
	writeStr(s.Role)
	if s.MustChangePassword {
		writeInt(1)
	} else {
		writeInt(0)
	}
	writeInt(s.CreatedAt.UnixNano())
	writeInt(s.UpdatedAt.UnixNano())
	sum := h.Sum(nil)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// etagMatches reports whether an If-Match header value admits etag: "*", or
// a comma-separated list holding it. If-Match compares strongly (RFC 9110
// §13.1.1), so a weak tag (W/"...") never matches.
func etagMatches(ifMatch, etag string) bool {
	for tag := range strings.SplitSeq(ifMatch, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || tag == etag {
			return true
		}
	}
	return false
}
