# The same image as `make image` (hack/image), for those who build with
# Docker or Podman:
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) -t falco-am-bridge .
# A static binary on an empty base, run as 65532:65532 on port 2802, the
# default mapping built into the binary.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
ARG REVISION=unknown
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -tags timetzdata \
      -ldflags "-s -w -X github.com/prometheus/common/version.Version=$VERSION -X github.com/prometheus/common/version.Revision=$REVISION" \
      -o /out/bin/falco-am-bridge ./cmd/falco-am-bridge \
 && mkdir -p /out/etc/ssl/certs /out/home/nonroot /out/tmp /out/var/lib/falco-am-bridge \
 && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > /out/etc/passwd \
 && printf 'root:x:0:\nnonroot:x:65532:\n' > /out/etc/group \
 && chmod 1777 /out/tmp && chmod 700 /out/home/nonroot /out/var/lib/falco-am-bridge \
 && chown 65532:65532 /out/home/nonroot /out/var/lib/falco-am-bridge

FROM scratch
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="falco-am-bridge" \
      org.opencontainers.image.description="Falco alerts in, Prometheus Alertmanager alerts out" \
      org.opencontainers.image.source="https://github.com/falco-am-bridge/falco-am-bridge" \
      org.opencontainers.image.url="https://github.com/falco-am-bridge/falco-am-bridge" \
      org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.revision="$REVISION" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/ /
ENV PATH=/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
EXPOSE 2802
WORKDIR /
ENTRYPOINT ["/bin/falco-am-bridge"]
