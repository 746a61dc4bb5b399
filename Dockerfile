# A small image holding only the static lxcfs-rs executable. Build: docker build -t lxcfs-rs .
# Run (it mounts on the host's /var/lib/lxcfs, which must be a shared mount):
#   docker run -d --name lxcfs-rs --restart=always --privileged --pid=host --cgroupns=host \
#     -v /sys/fs/cgroup:/sys/fs/cgroup -v /var/lib/lxcfs:/var/lib/lxcfs:rshared lxcfs-rs
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY scripts/build-static ./scripts/build-static
RUN cp "$(scripts/build-static)" /lxcfs-rs && strip /lxcfs-rs

FROM scratch
COPY --from=build /lxcfs-rs /lxcfs-rs
ENTRYPOINT ["/lxcfs-rs"]
CMD ["/var/lib/lxcfs"]
