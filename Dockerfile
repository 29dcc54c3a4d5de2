# The transfer-hpo image: the `hpo` command with its dependencies, for docker-compose.yml's dashboard and workers.
#
#   docker compose build                                   # torch from PyPI (on x86-64 Linux: its default CUDA build)
#   docker compose build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128   # another CUDA build
#   docker compose build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu     # CPU only, smaller
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HPO_CACHE=/cache

# Empty: torch comes from PyPI as a dependency of the project. Set, torch is installed from that index first.
ARG TORCH_INDEX_URL=
ARG TORCH_VERSION=2.13.0

WORKDIR /app

# Dependencies first, in their own layer (a stub package stands in for hpo/), so editing the code does not
# download torch again.
COPY pyproject.toml README.md ./
RUN set -eux; \
    if [ -n "$TORCH_INDEX_URL" ]; then pip install "torch==${TORCH_VERSION}" --index-url "$TORCH_INDEX_URL"; fi; \
    mkdir hpo && touch hpo/__init__.py; \
    pip install .; \
    pip uninstall -y transfer-hpo; \
    rm -rf hpo build ./*.egg-info

COPY hpo ./hpo
COPY studies ./studies
RUN pip install --no-deps . && rm -rf build ./*.egg-info

# Run as an unprivileged user. /cache is created here, owned by that user, so a fresh named volume mounted on it
# (docker-compose.yml's hpo-cache) starts out writable by the workers.
RUN useradd --create-home --uid 1000 hpo && mkdir -p /cache && chown hpo:hpo /cache
USER hpo

CMD ["hpo", "studies"]
