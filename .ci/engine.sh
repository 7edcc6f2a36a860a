# Sourced by .ci/run (or by hand: `source .ci/engine.sh && engine_start`): a container engine for
# the image tests on a machine without Docker's daemon. Debian's podman serves the Docker API on a
# socket the `docker` client talks to; runc and capped ulimits come from ./containers.conf; the
# base image is made from Debian packages (no registry needed) and cached outside the clone.

ENGINE_DIR="${ENGINE_DIR:-${XDG_RUNTIME_DIR:-/tmp}/cdk-engine-$(id -u)}"
BASE_CACHE="${BASE_CACHE:-$HOME/.cache/airbyte-images}"

engine_install() {
  local missing=()
  for tool in podman runc mmdebstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  command -v docker >/dev/null || missing+=(docker.io)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]}"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
  fi
}

# debian:bookworm-slim, made by mmdebstrap once and cached as a tarball.
engine_base_image() {
  if podman image exists debian:bookworm-slim; then return; fi
  if [ ! -s "$BASE_CACHE/base.tar" ]; then
    echo "making the base image (debian bookworm, minbase + ca-certificates)"
    mkdir -p "$BASE_CACHE"
    mmdebstrap --variant=minbase --include=ca-certificates bookworm "$BASE_CACHE/base.tar.part"
    mv "$BASE_CACHE/base.tar.part" "$BASE_CACHE/base.tar"
  fi
  podman import --change 'CMD ["/bin/bash"]' "$BASE_CACHE/base.tar" debian:bookworm-slim >/dev/null
}

# Starts the Docker-API service and exports DOCKER_HOST; stops it when the shell exits.
engine_start() {
  export CONTAINERS_CONF="$PWD/containers.conf"
  engine_install
  engine_base_image
  mkdir -p "$ENGINE_DIR"
  local sock="$ENGINE_DIR/podman.sock"
  export DOCKER_HOST="unix://$sock"
  if ! docker version >/dev/null 2>&1; then
    rm -f "$sock"
    podman system service --time=0 "unix://$sock" >"$ENGINE_DIR/service.log" 2>&1 &
    ENGINE_PID=$!
    trap engine_stop EXIT
    for _ in $(seq 50); do docker version >/dev/null 2>&1 && break; sleep 0.2; done
  fi
  docker version --format 'container engine: {{.Server.Version}}'
}

engine_stop() {
  if [ -n "${ENGINE_PID:-}" ]; then kill "$ENGINE_PID" 2>/dev/null || true; wait "$ENGINE_PID" 2>/dev/null || true; fi
}
