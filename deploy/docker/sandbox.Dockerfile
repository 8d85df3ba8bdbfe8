# The sandbox base image: paddock-runtime is the entrypoint (PID 1 of the pod), running as the
# unprivileged user 1000 with /workspace, /home/paddock and /tmp as its roots. Its libraries are
# the Debian packages the control-plane image found paddock-runtime to need (runtime-packages).
#   docker build -f deploy/docker/sandbox.Dockerfile -t paddock-sandbox:dev .
ARG CONTROL_PLANE=paddock:dev
FROM ${CONTROL_PLANE} AS control-plane

FROM debian:12-slim
COPY --from=control-plane /usr/bin/paddock-runtime /usr/local/bin/paddock-runtime
COPY --from=control-plane /usr/share/doc/paddock/runtime-packages /tmp/runtime-packages
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      ca-certificates git curl bash coreutils findutils procps python3 $(cat /tmp/runtime-packages) \
    && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages \
    && useradd --uid 1000 --create-home --home-dir /home/paddock paddock \
    && mkdir -p /workspace && chown 1000:1000 /workspace
USER 1000
WORKDIR /workspace
EXPOSE 8888
ENTRYPOINT ["/usr/local/bin/paddock-runtime"]
CMD ["--listen", "tcp:0.0.0.0:8888", "--token-file", "/var/run/paddock/token/token", "--claimable"]
