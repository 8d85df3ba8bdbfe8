# The sandbox base image: paddock-runtime is the entrypoint (PID 1 of the pod), running as the
# unprivileged user 1000 with /workspace, /home/paddock and /tmp as its roots.
#   docker build -f deploy/docker/sandbox.Dockerfile -t paddock-sandbox:dev .
FROM paddock:dev AS control-plane

FROM debian:12-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      ca-certificates git curl bash coreutils findutils procps python3 \
      libpoco-foundation80 libpoco-json80 libpoco-net80 libpoco-util80 libarchive13 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 1000 --create-home --home-dir /home/paddock paddock \
    && mkdir -p /workspace && chown 1000:1000 /workspace
COPY --from=control-plane /opt/paddock/bin/paddock-runtime /usr/local/bin/paddock-runtime
USER 1000
WORKDIR /workspace
EXPOSE 8888
ENTRYPOINT ["/usr/local/bin/paddock-runtime"]
CMD ["--listen", "tcp:0.0.0.0:8888", "--token-file", "/var/run/paddock/token/token", "--claimable"]
