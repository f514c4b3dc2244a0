# userservice: a static binary on a minimal, non-root, shell-less base.
# Base images are build arguments with the usual public defaults, so a machine
# without a registry builds this very file from locally made bases
# (tests/images/bases/build.sh makes them; the legacy builder, because BuildKit may
# consult a registry even for a local image):
#   DOCKER_BUILDKIT=0 docker build --build-arg GO_IMAGE=userservice-base-go:1.26 \
#     --build-arg RUNTIME_IMAGE=userservice-base-static:nonroot -t userservice .
# The build stage downloads modules from GOPROXY (the public proxy by default).
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
ARG VERSION=dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.title=userservice \
      org.opencontainers.image.version=${VERSION} \
      org.opencontainers.image.revision=${COMMIT}
COPY --from=build /out/userservice /usr/local/bin/userservice
COPY --from=build --chown=65532:65532 /out/data /data
# The shipped policy; mount a directory over it (or set POLICY_DIR) to change it.
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
