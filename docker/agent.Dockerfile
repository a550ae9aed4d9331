# The model agent image: `tms agent` beside Triton in every pod.
# Build from the repository root: docker build -f docker/agent.Dockerfile -t ghcr.io/tms-stack/agent:0.1.0 .
#
# The same image as the one the real-node tests build without a daemon (tools/build_images.py,
# docs/real-engine.md "Images"): a minimal Debian bookworm with Debian's Python 3.11 (plus
# libpython3.11 and numpy, the Triton image's shared base), the runtime dependencies and the
# project wheel under /usr/local/lib/python3.11/dist-packages, a `tms` launcher, user 1000.
FROM debian:bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-pip python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tms_stack ./tms_stack
# the project wheel and its runtime dependencies (the test build makes them two layers)
RUN python3 -m venv /opt/build && /opt/build/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && /opt/build/bin/pip install --no-cache-dir --no-compile --target /site /wheels/*.whl \
    && rm -rf /site/bin

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      python3 libpython3.11 python3-numpy libstdc++6 zlib1g ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && echo "tms:x:1000:1000::/home/tms:/usr/sbin/nologin" >> /etc/passwd \
    && echo "tms:x:1000:" >> /etc/group && mkdir -p /home/tms && chown 1000:1000 /home/tms
COPY --from=build /site/ /usr/local/lib/python3.11/dist-packages/
RUN printf '#!/usr/bin/python3\nimport sys\n\nfrom tms_stack.cli import main\n\nsys.exit(main())\n' > /usr/local/bin/tms \
    && chmod 755 /usr/local/bin/tms
USER 1000
EXPOSE 8080
ENTRYPOINT ["tms"]
CMD ["agent"]
