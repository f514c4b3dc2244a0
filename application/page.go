package application

import (
	"context"
	"fmt"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// Page sizes and the count bound of the contract (docs/api.md).
const (
	defaultPageSize = 50
	maxPageSize     = 100
	// exactCountLimit is how far totals are counted exactly; past it the
	// repository may estimate, because counting a million rows on every page
	// costs more than the page.
	exactCountLimit = 10000
	// maxOffsetRows is as deep as page numbers reach: an offset is read and
	// thrown away row by row, so a deep page costs the rows before it. Past
	// it, cursors (which seek by index) take over.
	maxOffsetRows = 10000
)

// errPageTooDeep refuses a page past maxOffsetRows.
var errPageTooDeep = &domain.Error{Kind: domain.KindMalformed, Code: "page_too_deep",
	Message: fmt.Sprintf("page * size may be at most %d; to read further, follow next_cursor with the cursor parameter, which has no limit", maxOffsetRows)}

// pageQuery is a validated page request.
type pageQuery struct {
	filter domain.Filter
	sort   domain.Sort
	page   int
	size   int
	after  *domain.SortKey // set when continuing from a cursor
}

// parsePage validates req, reporting every bad field at once; filter is the
// already parsed filter (list passes none). A cursor fixes the page number
// and the position, and must come back with the sort and filter it was
// issued for.
func (s *Users) parsePage(req ports.PageRequest, filter domain.Filter, filterErr error) (pageQuery, error) {
	var v domain.ValidationError
	v.Check("filter", filterErr)
	q := pageQuery{filter: filter, page: req.Page, size: req.Size}
	var err error
	q.sort, err = domain.ParseSort(req.Sort)
	v.Check("sort", err)
	if q.page == 0 {
		q.page = 1
	}
	if q.page < 1 {
		v.Add("page", "must be at least 1")
	}
	if q.size < 0 || q.size > maxPageSize {
		v.Add("size", fmt.Sprintf("must be between 1 and %d", maxPageSize))
	}
	if err := v.Err(); err != nil {
		return pageQuery{}, err
	}
	if req.Cursor != "" {
		c, err := decodeCursor(s.cursorKey, req.Cursor, q.sort, usersBinding(q.sort, q.filter))
		if err != nil {
			return pageQuery{}, err
		}
		if q.size != 0 && q.size != c.size {
			// Page numbers count pages of the cursor's size.
			return pageQuery{}, errInvalidCursor
		}
		q.page, q.size, q.after = c.page, c.size, &c.after
	}
	if q.size == 0 {
		q.size = defaultPageSize
	}
	if q.after == nil && q.page > maxOffsetRows/q.size {
		return pageQuery{}, errPageTooDeep
	}
	return q, nil
}

// fetchPage reads one page: the total (exact up to exactCountLimit), then
// size+1 rows, the extra one only telling whether a next page exists.
func (s *Users) fetchPage(ctx context.Context, q pageQuery) (ports.Page, error) {
	if q.filter.AtMostOne() {
		return s.fetchOne(ctx, q)
	}
	total, exact, err := s.repo.Count(ctx, q.filter, exactCountLimit)
	if err != nil {
		return ports.Page{}, fmt.Errorf("count users: %w", err)
	}
	size64 := int64(q.size)
	p := ports.Page{
		Items:      []*domain.User{},
		Total:      total,
		TotalExact: exact,
		Page:       q.page,
		Size:       q.size,
		Pages:      (total + size64 - 1) / size64,
	}
	sq := ports.SearchQuery{Filter: q.filter, Sort: q.sort, After: q.after, Limit: q.size + 1}
	if q.after == nil {
		// Past the last page there is nothing to read. (parsePage bounds
		// the offset at maxOffsetRows.)
		if exact && int64(q.page-1) >= p.Pages {
			return p, nil
		}
		sq.Offset = (q.page - 1) * q.size
	}
	items, err := s.repo.Search(ctx, sq)
	if err != nil {
		return ports.Page{}, fmt.Errorf("search users: %w", err)
	}
	if len(items) > q.size {
		items = items[:q.size]
		next := cursor{page: q.page + 1, size: q.size, after: q.sort.KeyOf(items[len(items)-1])}
		p.NextCursor = encodeCursor(s.cursorKey, next, q.sort, usersBinding(q.sort, q.filter))
	}
	if len(items) > 0 {
		p.Items = items
	}
	return p, nil
}

// fetchOne reads the page of a filter at most one user matches (an exact
// email) with one query, not two: the match is the total. It is on the first
// page only; a later page, or a cursor (never issued for a single match),
// is empty, as fetchPage would answer.
func (s *Users) fetchOne(ctx context.Context, q pageQuery) (ports.Page, error) {
	match, err := s.repo.Search(ctx, ports.SearchQuery{Filter: q.filter, Sort: q.sort, Limit: 1})
	if err != nil {
		return ports.Page{}, fmt.Errorf("search users: %w", err)
	}
	total := int64(len(match))
	p := ports.Page{Items: []*domain.User{}, Total: total, TotalExact: true, Page: q.page, Size: q.size, Pages: total}
	if q.after == nil && q.page == 1 && len(match) == 1 {
		p.Items = match
	}
	return p, nil
}
