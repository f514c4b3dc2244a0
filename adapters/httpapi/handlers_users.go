package httpapi

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

const (
	maxPageSize = 100
	headerETag  = "ETag"
)

// GetMe answers the signed-in user.
func (s *server) GetMe(c echo.Context) error {
	actor, err := actorOf(c)
	if err != nil {
		return err
	}
	u, err := s.users.Me(c.Request().Context(), actor)
	if err != nil {
		return err
	}
	return s.sendUser(c, http.StatusOK, u)
}

// ListUsers answers one page of users in id order.
func (s *server) ListUsers(c echo.Context, params ListUsersParams) error {
	actor, err := actorOf(c)
	if err != nil {
		return err
	}
	var v domain.ValidationError
	req := ports.PageRequest{Cursor: deref(params.Cursor)}
	req.Page, req.Size = pageParams(&v, params.Page, params.Size)
	if err := v.Err(); err != nil {
		return err
	}
	page, err := s.users.List(c.Request().Context(), actor, req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, userPageDTO(page))
}

// SearchUsers answers one page of users matching every filter given.
func (s *server) SearchUsers(c echo.Context, params SearchUsersParams) error {
	actor, err := actorOf(c)
	if err != nil {
		return err
	}
	var v domain.ValidationError
	req := ports.PageRequest{
		Filter: domain.FilterParams{
			FirstName: deref(params.FirstName),
			LastName:  deref(params.LastName),
			Email:     deref(params.Email),
			Gender:    deref(params.Gender),
			Role:      string(deref(params.Role)),
			IPAddress: deref(params.IpAddress),

			EmailExact: deref(params.EmailExact),
		},
		Sort:   string(deref(params.Sort)),
		Cursor: deref(params.Cursor),
	}
	req.Page, req.Size = pageParams(&v, params.Page, params.Size)
	if err := v.Err(); err != nil {
		return err
	}
	page, err := s.users.Search(c.Request().Context(), actor, req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, userPageDTO(page))
}

// pageParams checks the ranges the binder does not; 0 stays "default".
func pageParams(v *domain.ValidationError, page, size *int) (p, sz int) {
	if page != nil {
		if *page < 1 {
			v.Add("page", "must be at least 1")
		} else {
			p = *page
		}
	}
	return p, sizeParam(v, size)
}

func sizeParam(v *domain.ValidationError, size *int) int {
	if size == nil {
		return 0
	}
	if *size < 1 || *size > maxPageSize {
		v.Add("size", "must be between 1 and "+strconv.Itoa(maxPageSize))
		return 0
	}
	return *size
}

// CreateUser creates a user with any role (create-admin).
func (s *server) CreateUser(c echo.Context) error {
	actor, err := actorOf(c)
	if err != nil {
		return err
	}
	o, err := readObject(c, "createUser")
	if err != nil {
		return err
	}
	req := readNewUser(o)
	req.Role = o.value("role")
	if err := o.err(); err != nil {
		return err
	}
	u, err := s.users.Create(c.Request().Context(), actor, req)
	if err != nil {
		return err
	}
	return s.sendCreated(c, u)
}

// GetUser answers one user with its ETag.
func (s *server) GetUser(c echo.Context, id UserID) error {
	actor, err := actorOf(c)
	if err != nil {
		return err
	}
	u, err := s.users.Get(c.Request().Context(), actor, id)
	if err != nil {
		return err
	}
	return s.sendUser(c, http.StatusOK, u)
}

// UpdateUser changes the keys sent; If-Match makes it conditional.
func (s *server) UpdateUser(c echo.Context, id UserID, params UpdateUserParams) error {
	actor, err := actorOf(c)
	if err != nil {
		return err
	}
	o, err := readObject(c, "updateUser")
	if err != nil {
		return err
	}
	o.reject("role", "cannot be changed here; use PATCH /api/v1/users/{id}/role")
	req := ports.UpdateUserRequest{
		Patch: domain.ProfilePatch{
			FirstName: o.str("first_name"),
			LastName:  o.str("last_name"),
			Email:     o.str("email"),
			Gender:    o.str("gender"),
			IPAddress: o.str("ip_address"),
		},
		Password:        o.str("password"),
		CurrentPassword: o.str("current_password"),
		IfMatch:         parseIfMatch(deref(params.IfMatch)),
		Client:          clientAddr(c),
	}
	if err := o.err(); err != nil {
		return err
	}
	u, err := s.users.UpdateProfile(c.Request().Context(), actor, id, req)
	if err != nil {
		return err
	}
	return s.sendUser(c, http.StatusOK, u)
}

// ChangeUserRole sets a user's role.
func (s *server) ChangeUserRole(c echo.Context, id UserID) error {
	actor, err := actorOf(c)
	if err != nil {
		return err
	}
	o, err := readObject(c, "changeUserRole")
	if err != nil {
		return err
	}
	role := o.value("role")
	if err := o.err(); err != nil {
		return err
	}
	u, err := s.users.ChangeRole(c.Request().Context(), actor, id, role)
	if err != nil {
		return err
	}
	return s.sendUser(c, http.StatusOK, u)
}

// DeleteUser deletes a user.
func (s *server) DeleteUser(c echo.Context, id UserID) error {
	actor, err := actorOf(c)
	if err != nil {
		return err
	}
	if err := s.users.Delete(c.Request().Context(), actor, id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// sendUser answers one user with the ETag a conditional PUT needs.
func (s *server) sendUser(c echo.Context, status int, u *domain.User) error {
	c.Response().Header().Set(headerETag, etagOf(u.Version()))
	return c.JSON(status, ports.ViewOf(u))
}

func (s *server) sendCreated(c echo.Context, u *domain.User) error {
	c.Response().Header().Set(echo.HeaderLocation, apiPrefix+"/users/"+strconv.FormatInt(u.ID(), 10))
	return s.sendUser(c, http.StatusCreated, u)
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
