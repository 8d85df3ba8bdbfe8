# The control plane: `paddock` (serve, worker, migrate) with its plugins. Built from the
# repository root:  docker build -f deploy/docker/control-plane.Dockerfile -t paddock:dev .
FROM debian:12 AS build
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      build-essential cmake ninja-build pkg-config git ca-certificates \
      libpoco-dev libboost-dev libboost-filesystem-dev libtomlplusplus-dev libspdlog-dev \
      prometheus-cpp-dev libsqlite3-dev libpq-dev libssl-dev libarchive-dev libyaml-cpp-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPADDOCK_BUILD_TESTS=OFF \
    && cmake --build /build --target server \
    && cmake --install /build --prefix /opt/paddock

FROM debian:12-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      ca-certificates libpoco-crypto80 libpoco-foundation80 libpoco-json80 libpoco-net80 libpoco-netssl80 \
      libpoco-util80 libboost-filesystem1.74.0 libtomlplusplus3 libspdlog1.10 libprometheus-cpp-core1.0 \
      libprometheus-cpp-pull1.0 libsqlite3-0 libpq5 libarchive13 libyaml-cpp0.7 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/paddock paddock
COPY --from=build /opt/paddock /opt/paddock
ENV PATH=/opt/paddock/bin:$PATH PADDOCK_PLUGIN_DIR=/opt/paddock/lib/paddock/plugins PADDOCK_DATA_DIR=/var/lib/paddock
USER 10001
EXPOSE 3000 3001
ENTRYPOINT ["paddock"]
CMD ["serve", "--config", "/etc/paddock/paddock.toml"]
