# The model agent image: `tms agent` beside Triton in every pod.
# Build from the repository root: docker build -f docker/agent.Dockerfile -t ghcr.io/tms-stack/agent:0.1.0 .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tms_stack ./tms_stack
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --uid 1000 --create-home tms
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 1000
EXPOSE 8080
ENTRYPOINT ["tms"]
CMD ["agent"]
