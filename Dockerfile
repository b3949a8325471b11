# pod-logger image: pycontroller (with its C module) and the example, no build tools,
# non-root.
#
# Supply chain: every Python package comes from requirements/*.lock (exact versions and
# sha256 hashes, pip --require-hashes, wheels only); `./dev test` checks that the locks
# match pyproject.toml and `./dev lock` regenerates them. Pin the base image by digest
# when you build, e.g.
#   docker build --build-arg PYTHON_IMAGE=python:3.11-slim@sha256:<digest> .
# (the digest of the image you have verified; none is recorded here).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
# A C compiler for the optional pycontroller._speedups (hatch_build.py); the image below
# gets the built wheel, not the compiler.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY requirements/build.lock ./requirements/
RUN pip install --no-cache-dir --require-hashes --only-binary=:all: -r requirements/build.lock
COPY pyproject.toml hatch_build.py README.md LICENSE ./
COPY pycontroller ./pycontroller
COPY examples ./examples
COPY tools/testenv ./tools/testenv
RUN python -m build --wheel --no-isolation --outdir /wheels

FROM ${PYTHON_IMAGE}
RUN useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin app
COPY requirements/runtime.lock /tmp/runtime.lock
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --require-hashes --only-binary=:all: -r /tmp/runtime.lock \
    && pip install --no-cache-dir --no-deps /wheels/*.whl \
    && pip check \
    && rm -rf /wheels /tmp/runtime.lock
USER 65532
ENV PYTHONUNBUFFERED=1
ENTRYPOINT ["pod-logger"]
CMD ["--log-format=json", "--metrics-bind-address=:8080", "--health-probe-bind-address=:8081"]
