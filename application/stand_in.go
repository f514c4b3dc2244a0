package application

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"log/slog"
	"sync"
	"time"

	"github.com/userservice/userservice/ports"
)

// standInRefresh is how often the mix of stored hashes is read again. The
// mix changes slowly (imports, and imported hashes upgraded at login).
const standInRefresh = 10 * time.Minute

// standIns chooses the hash a login verifies when it names no usable
// account, so that such a login costs what logins of real accounts cost, in
// the same proportions: if a tenth of the accounts still have bcrypt hashes
// of cost 12 from an import, a tenth of unknown emails verify one of those.
// The choice is a keyed hash of the account name, so one email always costs
// the same, on every instance (the key derives from the cursor key, which
// every instance shares): probing an unknown email again tells nothing new.
// A wrong password against an imported bcrypt account and one against an
// unknown email are then told apart only as often as real accounts differ.
type standIns struct {
	repo     ports.UserRepository
	clock    ports.Clock
	log      *slog.Logger
	key      []byte
	fallback string // used while no account has a password

	mu         sync.Mutex
	classes    []ports.PasswordHashClass
	total      int64
	readAt     time.Time
	read       bool
	refreshing bool
}

func newStandIns(deps Deps, log *slog.Logger, fallback string) *standIns {
	key := sha256.Sum256(append([]byte("userservice stand-in hash v1\x00"), deps.CursorKey...))
	return &standIns{repo: deps.Repo, clock: deps.Clock, log: log, key: key[:], fallback: fallback}
}

// pick returns the hash to verify for a login naming account, which has
// none. The first call reads the mix; later ones refresh it in the
// background once it is standInRefresh old, never making a login wait.
func (s *standIns) pick(ctx context.Context, account string) string {
	s.mu.Lock()
	if !s.read {
		s.mu.Unlock()
		s.refresh(ctx)
		s.mu.Lock()
	} else if !s.refreshing && s.clock.Now().Sub(s.readAt) >= standInRefresh {
		s.refreshing = true
		go s.refresh(context.WithoutCancel(ctx))
	}
	classes, total := s.classes, s.total
	s.mu.Unlock()
	if total <= 0 {
		return s.fallback
	}
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(account))
	n := int64(binary.BigEndian.Uint64(mac.Sum(nil)) % uint64(total))
	for _, c := range classes {
		if n < c.Count {
			return c.Sample
		}
		n -= c.Count
	}
	return s.fallback // not reached: the counts add up to total
}

// refresh reads the mix of stored hashes. On failure the mix in hand stays
// (or the fallback, if there is none yet) and the next login tries again.
func (s *standIns) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	classes, err := s.repo.PasswordHashClasses(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshing = false
	if err != nil {
		s.log.WarnContext(ctx, "reading the mix of password hashes failed; unknown emails keep the previous stand-ins", slog.Any("error", err))
		return
	}
	var total int64
	for _, c := range classes {
		total += c.Count
	}
	s.classes, s.total, s.readAt, s.read = classes, total, s.clock.Now(), true
}
