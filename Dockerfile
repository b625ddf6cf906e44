# The image the Helm chart (deploy/helm/ccm-lb) runs: `ccm` on PATH, uid/gid 65532, nothing written
# outside /tmp (the chart mounts an emptyDir there for the self-signed serving certificate).
#
#   docker build -t ghcr.io/ccm-lb/ccm-lb:0.1.0 .
#
# Not built by CI: the test machines have no container engine. tests/deploy checks that this file and
# the chart agree (user, command, writable paths).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ccm ./ccm
COPY providers ./providers
COPY sandbox ./sandbox
COPY fakegce ./fakegce
RUN python -m venv /opt/ccm && /opt/ccm/bin/pip install --no-cache-dir /src

FROM python:3.11-slim
COPY --from=build /opt/ccm /opt/ccm
ENV PATH=/opt/ccm/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
ENTRYPOINT ["ccm"]
CMD ["run", "--help"]
