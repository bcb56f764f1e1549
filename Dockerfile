# The node as a container image: a static binary (CGO off) alone in an empty image, run as a
# non-root user, with no shell and no other file. Build with `make image` (docker, podman or
# buildah, whichever is installed).
#
# By default the binary is built from source in a Go stage. With
# `--build-arg BINARY_FROM=prebuilt` the binary is taken from bin/node-static instead (built
# by `make static`, with the same flags), so that no Go image has to be pulled: CI builds the
# image that way, daemonless, with buildah (see scripts/image-check.sh).
ARG BINARY_FROM=build
ARG GO_IMAGE=docker.io/library/golang:1.26-bookworm

FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/node ./cmd/node

FROM scratch AS prebuilt
COPY bin/node-static /out/node

FROM ${BINARY_FROM} AS binary

FROM scratch
COPY --from=binary /out/node /node
# 65532 is the conventional "nonroot" user of distroless images; no /etc/passwd is needed.
USER 65532:65532
# The peer protocol, the public API, grpc.health.v1 and reflection share one port.
EXPOSE 4369
ENTRYPOINT ["/node"]
CMD ["agent"]
