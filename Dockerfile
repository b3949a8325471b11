# pod-logger image: pycontroller and the example, no build tools, non-root.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY pycontroller ./pycontroller
COPY examples ./examples
COPY tools/testenv ./tools/testenv
RUN pip install --no-cache-dir build && python -m build --wheel --outdir /wheels

FROM python:3.11-slim
RUN useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 65532
ENV PYTHONUNBUFFERED=1
ENTRYPOINT ["pod-logger"]
CMD ["--log-format=json", "--metrics-bind-address=:8080", "--health-probe-bind-address=:8081"]
