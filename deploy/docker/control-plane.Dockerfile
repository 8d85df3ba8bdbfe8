# The control plane: `paddock` (serve, worker, migrate) with its plugins, installed from the
# Debian package (cmake/Package.cmake), so the image's libraries are the package's computed
# Depends. Built from the repository root:
#   docker build -f deploy/docker/control-plane.Dockerfile -t paddock:dev .
# compiles Paddock in Release and makes the package in the image (the steps of
# scripts/package.sh);
#   docker build -f deploy/docker/control-plane.Dockerfile --build-arg SOURCE=package -t paddock:dev .
# takes the package scripts/package.sh made instead (build-release/paddock_*_amd64.deb).
ARG SOURCE=build

FROM debian:12 AS build
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      build-essential cmake ninja-build pkg-config git ca-certificates file \
      libpoco-dev libboost-dev libboost-filesystem-dev libtomlplusplus-dev libspdlog-dev \
      prometheus-cpp-dev libsqlite3-dev libpq-dev libssl-dev libarchive-dev libyaml-cpp-dev \
      libseccomp-dev nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPADDOCK_BUILD_TESTS=OFF \
    && cmake --build /build --target server \
    && cd /build && cpack -G DEB && mkdir /out && cp paddock_*_amd64.deb /out/

FROM scratch AS package
COPY build-release/paddock_*_amd64.deb /out/

FROM ${SOURCE} AS deb

FROM debian:12-slim
COPY --from=deb /out/ /tmp/deb/
# uid 10001, as the manifests run it (deploy/base); the package's postinst keeps an existing
# paddock user. The Debian packages paddock-runtime needs go to runtime-packages, for
# sandbox.Dockerfile.
RUN groupadd --system --gid 10001 paddock \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/paddock --no-create-home paddock \
    && apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends ca-certificates /tmp/deb/paddock_*_amd64.deb \
    && rm -rf /var/lib/apt/lists/* /tmp/deb \
    && for lib in $(ldd /usr/bin/paddock-runtime | awk '$3 ~ /^\// {print $3}'); do \
         dpkg -S "*/$(basename "$lib")" | head -1 | cut -d: -f1; \
       done | sort -u > /usr/share/doc/paddock/runtime-packages \
    && test -s /usr/share/doc/paddock/runtime-packages
ENV PADDOCK_DATA_DIR=/var/lib/paddock
USER 10001
EXPOSE 3000 3001
ENTRYPOINT ["paddock"]
CMD ["serve", "--config", "/etc/paddock/paddock.toml"]
