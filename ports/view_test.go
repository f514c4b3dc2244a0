package ports_test

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

func stored(t *testing.T, s domain.StoredUser) *domain.User {
	t.Helper()
	u, err := domain.RestoreUser(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// secretUser has every secret and internal set, so a leak shows.
func secretUser(t *testing.T, ip string) *domain.User {
	return stored(t, domain.StoredUser{
		ID: 7, FirstName: "Zoë", LastName: "O'Doireidh", Email: "zoe@example.com", Gender: "Female",
		IPAddress: ip, Role: "admin", PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
		MustChangePassword: true, TokenVersion: 41, Version: 5,
		CreatedAt: time.Date(2024, 3, 1, 13, 30, 45, 123456789, time.FixedZone("CET", 3600)),
		UpdatedAt: time.Date(2024, 3, 1, 12, 30, 46, 0, time.UTC),
	})
}

// The view is a whitelist: exactly the public keys, ip_address null rather
// than absent when unset, and no secret under any name.
func TestViewHasOnlyPublicFields(t *testing.T) {
	t.Parallel()
	for _, ip := range []string{"10.0.0.1", ""} {
		data, err := json.Marshal(ports.ViewOf(secretUser(t, ip)))
		if err != nil {
			t.Fatal(err)
		}
		var fields map[string]any
		if err := json.Unmarshal(data, &fields); err != nil {
			t.Fatal(err)
		}
		keys := slices.Sorted(maps.Keys(fields))
		want := []string{"created_at", "email", "first_name", "gender", "id", "ip_address", "last_name", "role", "updated_at"}
		if !slices.Equal(keys, want) {
			t.Errorf("keys = %v, want %v", keys, want)
		}
		if ip == "" && fields["ip_address"] != nil {
			t.Errorf("ip_address = %v, want null", fields["ip_address"])
		}
		lower := strings.ToLower(string(data))
		for _, secret := range []string{"password", "hash", "token", "version", "must_change", "mustchange", "argon2"} {
			if strings.Contains(lower, secret) {
				t.Errorf("view contains %q: %s", secret, data)
			}
		}
	}
}

// Times are UTC at microseconds, as storage keeps them: a view made of a
// user before it was written equals one made of it read back.
func TestViewTimesAsStored(t *testing.T) {
	t.Parallel()
	v := ports.ViewOf(secretUser(t, ""))
	if want := time.Date(2024, 3, 1, 12, 30, 45, 123456000, time.UTC); v.CreatedAt != want {
		t.Errorf("created_at %v, want %v", v.CreatedAt, want)
	}
	data, _ := json.Marshal(v)
	if !strings.Contains(string(data), `"created_at":"2024-03-01T12:30:45.123456Z"`) {
		t.Errorf("created_at not RFC 3339 UTC at microseconds: %s", data)
	}
}

// Stored is ViewOf's inverse on the public fields, and a view written
// before ip_address was always present (absent when unset) reads as none.
func TestViewStoredRoundTrip(t *testing.T) {
	t.Parallel()
	for _, ip := range []string{"2001:db8::1", ""} {
		v := ports.ViewOf(secretUser(t, ip))
		if got := ports.ViewOf(stored(t, v.Stored())); !equalViews(got, v) {
			t.Errorf("round trip %+v, want %+v", got, v)
		}
	}
	var old ports.UserView
	err := json.Unmarshal([]byte(`{"id":3,"first_name":"A","last_name":"B","email":"a@b.co","gender":"Male",`+
		`"role":"user","created_at":"2024-03-01T12:30:45.123456Z","updated_at":"2024-03-01T12:30:45.123456Z"}`), &old)
	if err != nil {
		t.Fatal(err)
	}
	if u := stored(t, old.Stored()); u.IP().IsValid() {
		t.Errorf("an absent ip_address read as %v", u.IP())
	}
}

func equalViews(a, b ports.UserView) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
