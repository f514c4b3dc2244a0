package gormstore

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// Dialect names, as GORM's dialectors report them.
const (
	dialectSQLite   = "sqlite"
	dialectPostgres = "postgres"
)

// dbTime is an instant as both engines store it at microsecond precision:
// timestamptz on PostgreSQL; integer Unix microseconds on SQLite, which has
// no time type and whose text formats would neither round-trip nor sort
// exactly. Values are written truncated to microseconds, in UTC, and read
// back in UTC.
type dbTime struct{ time.Time }

func newDBTime(t time.Time) dbTime { return dbTime{t.UTC().Truncate(time.Microsecond)} }

// GormValue writes the instant in the representation of db's dialect.
func (t dbTime) GormValue(_ context.Context, db *gorm.DB) clause.Expr {
	if db.Dialector.Name() == dialectSQLite {
		return clause.Expr{SQL: "?", Vars: []any{t.UnixMicro()}}
	}
	return clause.Expr{SQL: "?", Vars: []any{t.Time}}
}

// GormDataType tells GORM the field is a time, not a nested struct.
func (dbTime) GormDataType() string { return "time" }

func (t *dbTime) Scan(src any) error {
	switch v := src.(type) {
	case time.Time:
		t.Time = v.UTC()
	case int64:
		t.Time = time.UnixMicro(v).UTC()
	default:
		return fmt.Errorf("gormstore: cannot read a time from %T", src)
	}
	return nil
}

// nullTime is a dbTime that may be NULL.
type nullTime struct {
	Time  time.Time
	Valid bool
}

func (t nullTime) GormValue(ctx context.Context, db *gorm.DB) clause.Expr {
	if !t.Valid {
		return clause.Expr{SQL: "NULL"}
	}
	return newDBTime(t.Time).GormValue(ctx, db)
}

func (nullTime) GormDataType() string { return "time" }

func (t *nullTime) Scan(src any) error {
	if src == nil {
		*t = nullTime{}
		return nil
	}
	var d dbTime
	if err := d.Scan(src); err != nil {
		return err
	}
	*t = nullTime{Time: d.Time, Valid: true}
	return nil
}

// ipKey is the 16-byte sort key of an address (domain.IPKey), NULL when the
// user has none. A nil []byte would reach SQLite as an empty BLOB, not NULL.
type ipKey []byte

func (k ipKey) Value() (driver.Value, error) {
	if k == nil {
		return nil, nil
	}
	return []byte(k), nil
}

func (k *ipKey) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*k = nil
	case []byte:
		*k = append(ipKey(nil), v...)
	default:
		return fmt.Errorf("gormstore: cannot read an ip key from %T", src)
	}
	return nil
}

// userRecord is a row of users.
type userRecord struct {
	ID                 int64   `gorm:"column:id;primaryKey"`
	FirstName          string  `gorm:"column:first_name"`
	LastName           string  `gorm:"column:last_name"`
	FirstNameFold      string  `gorm:"column:first_name_fold"`
	LastNameFold       string  `gorm:"column:last_name_fold"`
	Email              string  `gorm:"column:email"`
	Gender             string  `gorm:"column:gender"`
	Role               string  `gorm:"column:role"`
	IPAddress          *string `gorm:"column:ip_address"`
	IPKey              ipKey   `gorm:"column:ip_key"`
	PasswordHash       string  `gorm:"column:password_hash"`
	MustChangePassword bool    `gorm:"column:must_change_password"`
	TokenVersion       int64   `gorm:"column:token_version"`
	Version            int64   `gorm:"column:version"`
	CreatedAt          dbTime  `gorm:"column:created_at;autoCreateTime:false"`
	UpdatedAt          dbTime  `gorm:"column:updated_at;autoUpdateTime:false"`
}

func (userRecord) TableName() string { return "users" }

func recordOf(u *domain.User) userRecord {
	s := u.Stored()
	r := userRecord{
		ID: s.ID, FirstName: s.FirstName, LastName: s.LastName,
		FirstNameFold: domain.Fold(s.FirstName), LastNameFold: domain.Fold(s.LastName),
		Email: s.Email, Gender: s.Gender, Role: s.Role, PasswordHash: s.PasswordHash,
		MustChangePassword: s.MustChangePassword, TokenVersion: s.TokenVersion, Version: s.Version,
		CreatedAt: newDBTime(s.CreatedAt), UpdatedAt: newDBTime(s.UpdatedAt),
	}
	if ip := u.IP(); ip.IsValid() {
		addr := ip.String()
		key := domain.IPKey(ip)
		r.IPAddress, r.IPKey = &addr, key[:]
	}
	return r
}

// changes are the columns an update writes: everything but id and created_at.
func (r userRecord) changes() map[string]any {
	return map[string]any{
		"first_name": r.FirstName, "last_name": r.LastName,
		"first_name_fold": r.FirstNameFold, "last_name_fold": r.LastNameFold,
		"email": r.Email, "gender": r.Gender, "role": r.Role,
		"ip_address": r.IPAddress, "ip_key": r.IPKey,
		"password_hash": r.PasswordHash, "must_change_password": r.MustChangePassword,
		"token_version": r.TokenVersion, "version": r.Version, "updated_at": r.UpdatedAt,
	}
}

func (r userRecord) user() (*domain.User, error) {
	s := domain.StoredUser{
		ID: r.ID, FirstName: r.FirstName, LastName: r.LastName, Email: r.Email,
		Gender: r.Gender, Role: r.Role, PasswordHash: r.PasswordHash,
		MustChangePassword: r.MustChangePassword, TokenVersion: r.TokenVersion, Version: r.Version,
		CreatedAt: r.CreatedAt.Time, UpdatedAt: r.UpdatedAt.Time,
	}
	if r.IPAddress != nil {
		s.IPAddress = *r.IPAddress
	}
	return domain.RestoreUser(s)
}

func usersOf(recs []userRecord) ([]*domain.User, error) {
	return convertAll(recs, userRecord.user)
}

// convertAll converts every record with conv, stopping at the first error.
func convertAll[R, T any](recs []R, conv func(R) (T, error)) ([]T, error) {
	out := make([]T, len(recs))
	for i, r := range recs {
		v, err := conv(r)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// encodeSnapshot returns u's public view (ports.UserView: what /audit and
// WebSocket events show of it) as JSON, or nil for no user.
func encodeSnapshot(u *domain.User) (*string, error) {
	if u == nil {
		return nil, nil
	}
	b, err := json.Marshal(ports.ViewOf(u))
	if err != nil {
		return nil, fmt.Errorf("gormstore: encode change snapshot: %w", err)
	}
	text := string(b)
	return &text, nil
}

// decodeSnapshot reads a stored view back. Entries written before
// ip_address was always present leave it out when unset: absent reads as
// null.
func decodeSnapshot(text *string) (*domain.User, error) {
	if text == nil {
		return nil, nil
	}
	var v ports.UserView
	if err := json.Unmarshal([]byte(*text), &v); err != nil {
		return nil, fmt.Errorf("gormstore: decode change snapshot: %w", err)
	}
	return domain.RestoreUser(v.Stored())
}

// changeRecord is a row of change_log.
type changeRecord struct {
	Seq      int64   `gorm:"column:seq;primaryKey"`
	At       dbTime  `gorm:"column:at"`
	ActorID  int64   `gorm:"column:actor_id"`
	Action   string  `gorm:"column:action"`
	TargetID int64   `gorm:"column:target_id"`
	Before   *string `gorm:"column:before"`
	After    *string `gorm:"column:after"`
}

func (changeRecord) TableName() string { return "change_log" }

func (r changeRecord) change() (domain.Change, error) {
	action, err := domain.ParseStoredChangeAction(r.Action)
	if err != nil {
		return domain.Change{}, fmt.Errorf("gormstore: change %d: %w", r.Seq, err)
	}
	c := domain.Change{Seq: r.Seq, At: r.At.Time, ActorID: r.ActorID, Action: action, TargetID: r.TargetID}
	if c.Before, err = decodeSnapshot(r.Before); err != nil {
		return domain.Change{}, err
	}
	if c.After, err = decodeSnapshot(r.After); err != nil {
		return domain.Change{}, err
	}
	return c, nil
}
