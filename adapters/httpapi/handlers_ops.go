package httpapi

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/userservice/userservice/domain"
	"github.com/userservice/userservice/ports"
)

// ListAudit answers one page of the change log.
func (s *server) ListAudit(c echo.Context, params ListAuditParams) error {
	actor, err := actorOf(c)
	if err != nil {
		return err
	}
	var v domain.ValidationError
	req := ports.AuditRequest{
		TargetID: params.TargetId,
		ActorID:  params.ActorId,
		Action:   string(deref(params.Action)),
		Since:    deref(params.Since),
		Until:    deref(params.Until),
		Cursor:   deref(params.Cursor),
		Size:     sizeParam(&v, params.Size),
	}
	if err := v.Err(); err != nil {
		return err
	}
	page, err := s.audit.Audit(c.Request().Context(), actor, req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, auditPageDTO(page))
}

// Healthz answers as long as the process serves HTTP.
func (s *server) Healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, Status{Status: "ok"})
}

var errNotReady = &domain.Error{Kind: domain.KindUnavailable, Code: "not_ready",
	Message: "not ready: the database is unreachable"}

// Readyz answers 200 when the service's dependencies answer in time.
func (s *server) Readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.ReadyTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		return errNotReady.Wrap(err)
	}
	return c.JSON(http.StatusOK, Status{Status: "ok"})
}

// Metrics serves the registry in Prometheus' text format.
func (s *server) Metrics(c echo.Context) error {
	s.metricsHandler.ServeHTTP(c.Response(), c.Request())
	return nil
}
