# The image the Helm chart (deploy/helm/ccm-lb) runs: `ccm` on PATH, uid/gid 65532, nothing written
# outside /tmp (the chart mounts an emptyDir there for the self-signed serving certificate).
#
#   docker build -t ghcr.io/ccm-lb/ccm-lb:0.1.0 .
#
# For users with Docker. The project's machines have no container engine: hack/build-image builds the
# same image without one (a Debian base made by debootstrap, the same virtualenv, user, entrypoint and
# environment; docs/image.md), and CI runs the controller from it. tests/deploy keeps this file, the
# script and the chart in agreement (user, command, environment, /opt/ccm, what is copied).
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
