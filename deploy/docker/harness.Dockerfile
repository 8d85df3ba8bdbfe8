# A sandbox image for one agent CLI: the base image plus the CLI from npm, at the version the
# harness plugin pins (plugins/harness-<name>/README.md), under /opt/paddock-tools where the
# harness looks for it: kSandboxTools (/opt/paddock/tools) / TOOLS_KEY, the key the worker's tool
# cache gives the harness's package set (its log line "installing sandbox tools ... into ..." names it). One image
# per harness:
#   docker build -f deploy/docker/harness.Dockerfile --build-arg TOOLS_KEY=<key> --build-arg NPM_PACKAGE=@anthropic-ai/claude-code@2.1.330 -t paddock-sandbox-claude-code:dev .
#   docker build -f deploy/docker/harness.Dockerfile --build-arg TOOLS_KEY=<key> --build-arg NPM_PACKAGE=@openai/codex@0.169.0 -t paddock-sandbox-codex:dev .
#   docker build -f deploy/docker/harness.Dockerfile --build-arg TOOLS_KEY=<key> --build-arg NPM_PACKAGE=opencode-ai@1.18.33 -t paddock-sandbox-opencode:dev .
ARG BASE=paddock-sandbox:dev
FROM ${BASE}
ARG NPM_PACKAGE
ARG TOOLS_KEY
# Behind a TLS-intercepting proxy: a CA bundle npm (node) should trust, mounted into the build,
# e.g. --volume /etc/ssl/certs/ca-certificates.crt:/run/build-ca.crt:ro
#      --build-arg NODE_EXTRA_CA_CERTS=/run/build-ca.crt
ARG NODE_EXTRA_CA_CERTS
USER root
RUN test -n "${NPM_PACKAGE}" && test -n "${TOOLS_KEY}" \
    && apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/* \
    && npm install --global --prefix "/opt/paddock/tools/${TOOLS_KEY}" "${NPM_PACKAGE}" \
    && npm cache clean --force
USER 1000
