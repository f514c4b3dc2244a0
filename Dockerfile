# userservice: a static binary on a minimal, non-root, shell-less base.
# Base images are build arguments with the usual public defaults, so a machine
# without a registry can build this very file from locally made bases:
#   docker build --build-arg GO_IMAGE=my-go --build-arg RUNTIME_IMAGE=my-static .
ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${GO_IMAGE} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN go build -trimpath \
      -ldflags "-s -w -X github.com/userservice/userservice/bootstrap.Version=${VERSION} -X github.com/userservice/userservice/bootstrap.Commit=${COMMIT}" \
      -o /out/userservice . \
 && mkdir -p /out/data

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/userservice /usr/local/bin/userservice
COPY --from=build --chown=65532:65532 /out/data /data
COPY policies /etc/userservice/policies
WORKDIR /data
# Without DATABASE_URL the service keeps an embedded SQLite file in /data
# (mount a volume there); docker-compose.yml sets a PostgreSQL URL instead.
ENV HTTP_ADDR=:8000 POLICY_DIR=/etc/userservice/policies LOG_FORMAT=json
USER 65532:65532
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/userservice", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/userservice"]
CMD ["serve"]
