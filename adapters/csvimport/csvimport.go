// Package csvimport reads the CSV files of user imports (docs/api.md): a
// streaming decoder that maps columns by header name in any order, accepts a
// UTF-8 byte order mark, CRLF line ends and quoted fields, and turns each row
// into a validated domain user or the list of its problems, with the line it
// starts on. It holds one row at a time, so memory stays flat whatever the
// file's size; a row longer than MaxRowBytes ends the reading, since nothing
// after it can be trusted to start a row.
package csvimport

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// MaxRowBytes bounds one row. A real row is well under 2 KiB (four names of
// 100 characters, an email of 254 bytes, a hash of 512 at most).
const MaxRowBytes = 64 << 10

// Column names of the contract.
const (
	ColID           = "id"
	ColFirstName    = "first_name"
	ColLastName     = "last_name"
	ColEmail        = "email"
	ColGender       = "gender"
	ColIPAddress    = "ip_address"
	ColRole         = "role"
	ColPasswordHash = "password_hash"
	// FieldRow names a problem of the row as a whole (unreadable CSV, a
	// wrong number of fields).
	FieldRow = "row"
)

// Required and Optional list the known columns.
var (
	required = []string{ColFirstName, ColLastName, ColEmail, ColGender, ColIPAddress}
	optional = []string{ColID, ColRole, ColPasswordHash}
)

// Required returns the columns every import file must have.
func Required() []string { return slices.Clone(required) }

const utf8BOM = "\uFEFF"

// bufSize is the read-ahead of the CSV reader (bufio's default), which the
// row bound allows for.
const bufSize = 4096

// Decoder is the ports.ImportDecoder of CSV files. It is stateless and safe
// for concurrent use.
type Decoder struct{}

var _ ports.ImportDecoder = Decoder{}

// New returns the CSV decoder.
func New() Decoder { return Decoder{} }

func malformed(format string, args ...any) *domain.Error {
	return &domain.Error{Kind: domain.KindMalformed, Code: "malformed_csv", Message: fmt.Sprintf(format, args...)}
}

// Decode reads r's header and returns the rows after it. The error is a
// KindMalformed *domain.Error when the file cannot be an import (empty, not
// CSV, a required column missing or a known one twice), or r's own read
// error, wrapped.
func (Decoder) Decode(r io.Reader, now time.Time) (ports.ImportRows, error) {
	src := &boundedReader{r: r, limit: MaxRowBytes + bufSize}
	br := bufio.NewReaderSize(src, bufSize)
	// A byte order mark is dropped before the CSV reader sees it: it would
	// make a quoted first column a quoting error.
	if bom, err := br.Peek(len(utf8BOM)); err == nil && string(bom) == utf8BOM {
		_, _ = br.Discard(len(utf8BOM))
	}
	// NewReader keeps br, a bufio.Reader of the default size, as it is.
	cr := csv.NewReader(br)
	// Rows are handed on, so each needs its own slice.
	cr.ReuseRecord = false
	header, err := cr.Read()
	switch {
	case errors.Is(err, io.EOF):
		return nil, malformed("the file is empty: its first row must name the columns (%s)", strings.Join(required, ", "))
	case errors.Is(err, errRowTooLong):
		return nil, malformed("the first row is longer than %d bytes: this is not a CSV file with a header", MaxRowBytes)
	case err != nil:
		if pe, ok := errors.AsType[*csv.ParseError](err); ok {
			return nil, malformed("not a CSV file: the header row: %v", pe.Err)
		}
		return nil, fmt.Errorf("csvimport: reading the header: %w", err)
	}
	rows := &rows{csv: cr, src: src, header: header, cols: map[string]int{}, now: now}
	if err := rows.mapHeader(); err != nil {
		return nil, err
	}
	rows.recordDone()
	return rows, nil
}

// rows is the ports.ImportRows of one file.
type rows struct {
	csv     *csv.Reader
	src     *boundedReader
	header  []string
	cols    map[string]int // known column -> index
	unknown []string
	now     time.Time
	// nextLine is the line after the last row read, where a row that cannot
	// be parsed is reported.
	nextLine int
	done     bool
}

func (r *rows) mapHeader() error {
	var v domain.ValidationError
	seenUnknown := map[string]bool{}
	for i, raw := range r.header {
		name := strings.ToLower(strings.TrimSpace(raw))
		if !slices.Contains(required, name) && !slices.Contains(optional, name) {
			if !seenUnknown[name] {
				seenUnknown[name] = true
				r.unknown = append(r.unknown, strings.TrimSpace(raw))
			}
			continue
		}
		if _, dup := r.cols[name]; dup {
			v.Add(name, "appears more than once in the header")
			continue
		}
		r.cols[name] = i
	}
	var missing []string
	for _, name := range required {
		if _, ok := r.cols[name]; !ok {
			missing = append(missing, name)
			v.Add(name, "required column is missing")
		}
	}
	if err := domain.AsError(v.Err()); err != nil {
		e := malformed("the header must name the columns %s (in any order; %s optional)",
			strings.Join(required, ", "), strings.Join(optional, ", "))
		if len(missing) > 0 {
			e.Message = fmt.Sprintf("the header lacks the required column(s) %s; %s", strings.Join(missing, ", "), e.Message)
		}
		e.Fields = err.Fields
		return e
	}
	return nil
}

func (r *rows) Header() []string  { return r.header }
func (r *rows) Unknown() []string { return slices.Clone(r.unknown) }

// recordDone notes where the next row starts, for the row bound and for
// the line of a row that cannot be read.
func (r *rows) recordDone() {
	r.src.recordStart = r.csv.InputOffset()
}

// endLine is the line the record's last field ends on.
func (r *rows) endLine(rec []string) int {
	if len(rec) == 0 {
		return r.nextLine
	}
	last := len(rec) - 1
	line, _ := r.csv.FieldPos(last)
	return line + strings.Count(rec[last], "\n")
}

// Next returns the next row; see ports.ImportRows.
func (r *rows) Next() (ports.ImportRow, error) {
	if r.done {
		return ports.ImportRow{}, io.EOF
	}
	if r.nextLine == 0 {
		r.nextLine = r.endLine(r.header) + 1
	}
	rec, err := r.csv.Read()
	defer r.recordDone()
	switch {
	case errors.Is(err, io.EOF):
		r.done = true
		return ports.ImportRow{}, io.EOF
	case errors.Is(err, errRowTooLong):
		r.done = true
		return ports.ImportRow{Line: r.nextLine, Errors: []domain.FieldError{{Field: FieldRow,
			Message: fmt.Sprintf("is longer than %d bytes; the rest of the file was not read", MaxRowBytes)}}}, nil
	case err == nil:
		line, _ := r.csv.FieldPos(0)
		r.nextLine = r.endLine(rec) + 1
		return r.row(line, rec), nil
	}
	pe, ok := errors.AsType[*csv.ParseError](err)
	if !ok {
		return ports.ImportRow{}, fmt.Errorf("csvimport: reading line %d: %w", r.nextLine, err)
	}
	if errors.Is(pe.Err, csv.ErrFieldCount) {
		r.nextLine = r.endLine(rec) + 1
		return ports.ImportRow{Line: pe.StartLine, Cells: rec, Errors: []domain.FieldError{{Field: FieldRow,
			Message: fmt.Sprintf("has %d fields; the header has %d", len(rec), len(r.header))}}}, nil
	}
	// A quoting error: the rest of the line it is on was skipped.
	r.nextLine = pe.Line + 1
	return ports.ImportRow{Line: pe.StartLine, Errors: []domain.FieldError{{Field: FieldRow,
		Message: fmt.Sprintf("is not valid CSV: %v (line %d, column %d)", pe.Err, pe.Line, pe.Column)}}}, nil
}

// row validates one record of the header's width.
func (r *rows) row(line int, rec []string) ports.ImportRow {
	cell := func(name string) string {
		if i, ok := r.cols[name]; ok {
			return rec[i]
		}
		return ""
	}
	out := ports.ImportRow{Line: line, Cells: rec, PasswordHash: strings.TrimSpace(cell(ColPasswordHash))}
	var v domain.ValidationError
	p := domain.NewUserParams{
		FirstName: cell(ColFirstName),
		LastName:  cell(ColLastName),
		Email:     cell(ColEmail),
		Gender:    cell(ColGender),
		IPAddress: strings.TrimSpace(cell(ColIPAddress)),
	}
	if s := strings.TrimSpace(cell(ColID)); s != "" {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id <= 0 {
			v.Add(ColID, "must be a positive integer")
		} else {
			p.ID = id
		}
	}
	if s := strings.TrimSpace(cell(ColRole)); s != "" {
		role, err := domain.ParseRole(strings.ToLower(s))
		v.Check(ColRole, err)
		p.Role, out.RoleGiven = role, err == nil
	}
	u, err := domain.NewUser(p, r.now)
	v.Check("user", err)
	if err := domain.AsError(v.Err()); err != nil {
		out.Errors = err.Fields
		return out
	}
	out.User = u
	return out
}

// errRowTooLong stops a row that outgrows MaxRowBytes.
var errRowTooLong = errors.New("csvimport: row too long")

// boundedReader hands the CSV reader at most limit bytes past the start of
// the row it is reading, so one endless row cannot take unbounded memory.
type boundedReader struct {
	r           io.Reader
	limit       int64
	read        int64 // bytes handed out so far
	recordStart int64 // offset of the row being read
}

func (b *boundedReader) Read(p []byte) (int, error) {
	room := b.recordStart + b.limit - b.read
	if room <= 0 {
		return 0, errRowTooLong
	}
	if int64(len(p)) > room {
		p = p[:room]
	}
	n, err := b.r.Read(p)
	b.read += int64(n)
	return n, err
}
