# syntax=docker/dockerfile:1
# Tollgate sidecar image (issue 8; deployment notes in docs/deploy.md).
#
# Two stages: "build" turns the source into a wheel and installs it into /opt/venv;
# the final stage copies only that venv, and the standard library's bytecode, onto a
# clean slim base, so no compiler, build backend or source tree reaches the image. tests/test_wheel_install.py performs the
# same install (the built wheel into a fresh venv) and starts the daemon from it as
# uid 65532 on a read-only root file system.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
# The base image deletes every .pyc of the standard library, and the final image (read-
# only, PYTHONDONTWRITEBYTECODE) writes none: without this, each start of the gate and
# each exec probe would compile the stdlib modules it imports from source again. It is
# compiled before pip runs (pip would leave timestamp bytecode, which compileall takes as
# up to date), as unchecked-hash bytecode, used whatever mtimes the layers give the
# sources, and only the __pycache__ directories are kept for the final stage, under
# their full path, which the final stage copies to /. The stdlib's directory is the
# interpreter's own, not a version written here: on a base of another minor version a
# written python3.11 names no directory, and compileall and find pass over it without
# an error, shipping no bytecode (and this RUN fails if it kept none).
# site-packages (the base image's pip and setuptools) is not the gate's: left out.
RUN stdlib="$(python -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')" \
    && python -m compileall -q -f -j0 --invalidation-mode unchecked-hash -x /site-packages/ \
        "$stdlib" \
    && mkdir /opt/stdlib-bytecode \
    && find "$stdlib" -path "$stdlib/site-packages" -prune -o -type d -name __pycache__ \
        -exec cp -a --parents -t /opt/stdlib-bytecode {} + \
    && test -d "/opt/stdlib-bytecode$stdlib/__pycache__"
WORKDIR /src
COPY constraints.txt pyproject.toml README.md ./
COPY sidecar/ sidecar/
# Every version comes from constraints.txt, the releases the test suite passed with:
# first the build backend (installed here, so the wheel builds without an isolated
# environment fetching the newest), then the gate's dependencies. The venv has no pip
# of its own: the base image's pip installs into it, so the final image carries no
# package installer in the venv. pip's bytecode is checked against the sources' mtimes,
# which the layers need not keep (BuildKit's rewrite-timestamp clamps them to
# SOURCE_DATE_EPOCH): it is compiled again as unchecked-hash, like the stdlib's.
RUN pip install --constraint constraints.txt setuptools wheel \
    && pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
    && python -m venv --without-pip /opt/venv \
    && pip --python /opt/venv/bin/python install --constraint constraints.txt \
        /wheels/tollgate-*.whl \
    && python -m compileall -q -f -j0 --invalidation-mode unchecked-hash /opt/venv/lib

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="tollgate" \
      org.opencontainers.image.description="Deny-by-default policy gate for AI agents (Kubernetes sidecar)" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/stdlib-bytecode/ /
COPY --from=build /opt/venv /opt/venv
# The root file system is read-only in the pod: bytecode is compiled at build time (the
# stdlib's and the venv's, above), the only writable places are the audit volume and the
# /tmp emptyDir.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp \
    TOLLGATE_POLICY=/etc/tollgate/policy/policy.yaml \
    TOLLGATE_AUDIT_DIR=/var/lib/tollgate/audit
# 65532 is the conventional "nonroot" uid/gid; no passwd entry is needed.
USER 65532:65532
EXPOSE 9800
ENTRYPOINT ["tollgate", "serve"]
