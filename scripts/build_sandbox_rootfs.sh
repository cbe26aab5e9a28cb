#!/usr/bin/env bash
# Build the sandbox image without a registry: a Debian bookworm rootfs (mmdebstrap, or debootstrap), `docker import`.
#
#   scripts/build_sandbox_rootfs.sh [IMAGE]        (default codedance-sandbox:latest; run as root)
#
# Two layers, each skipped when already built:
#   1. base  codedance-sandbox-base:<recipe hash>  Debian (essential) + python3, numpy, PIL, matplotlib (font cache
#            prebuilt), seccomp, cv2 (the opencv-python-headless wheel: Debian's python3-opencv pulls ~190
#            packages); a non-root user; no setuid bits. Rebuilt only when BASE_RECIPE below changes.
#   2. IMAGE the base + the worker package folder codedance_cli/sandbox/worker/ (as /opt/codedance/worker),
#            labelled with the folder's sha256 so a changed worker rebuilds this layer alone (seconds).
# Users with a registry can use docker/sandbox/Dockerfile instead (`codedance sandbox build-image --method dockerfile`).
set -euo pipefail

image=${1:-codedance-sandbox:latest}
repo=$(cd "$(dirname "$0")/.." && pwd)
worker=${CODEDANCE_SANDBOX_WORKER:-$repo/codedance_cli/sandbox/worker}
mirror=${CODEDANCE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
debs_cache=${CODEDANCE_DEBOOTSTRAP_CACHE:-/var/cache/codedance-debootstrap}
sandbox_uid=10001

# Everything that decides the base layer's content; its hash names the base image.
# Debian gives the interpreter, numpy 1.24, Pillow 9.4 and the seccomp binding. matplotlib and cv2 come as
# manylinux wheels (no dependency resolution: the list is complete), because Debian's python3-matplotlib drags in
# fonttools -> scipy -> pythran -> g++ (1.2 GB image) and python3-opencv ~190 packages.
debian_packages=python3,python3-numpy,python3-pil,python3-seccomp,libseccomp2
wheels=(
  opencv-python-headless==4.11.0.86 pyseccomp==0.1.2
  matplotlib==3.9.4 contourpy==1.3.1 cycler==0.12.1 fonttools==4.55.3 kiwisolver==1.4.7
  packaging==24.2 pyparsing==3.2.0 python-dateutil==2.9.0.post0 six==1.17.0
)
BASE_RECIPE="v3 bookworm minbase $debian_packages ${wheels[*]} uid=$sandbox_uid"

log() { echo "build_sandbox_rootfs [${SECONDS}s]: $*" >&2; }
sha256() { sha256sum | cut -c1-64; }
label_of() { docker image inspect --format "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; }

[[ -f $worker/__main__.py ]] || { log "missing $worker/__main__.py (the worker package folder)"; exit 2; }
base_hash=$(printf '%s' "$BASE_RECIPE" | sha256)
base=codedance-sandbox-base:${base_hash:0:12}
# The folder's hash, as docker_container.worker_sha256() computes it: sha256sum lines of its files (caches left out).
worker_files() { (cd "$worker" && find . -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | LC_ALL=C sort -z); }
worker_hash=$(worker_files | (cd "$worker" && xargs -0 -r sha256sum) | sha256)

if [[ $(label_of "$image" org.codedance.worker-sha256) == "$worker_hash" && $(label_of "$image" org.codedance.base-sha256) == "$base_hash" ]]; then
  log "$image is up to date (worker ${worker_hash:0:12})"
  exit 0
fi

build_base() {
  [[ $(id -u) -eq 0 ]] || { log "building the rootfs needs root"; exit 1; }
  local work rootfs pip arch
  work=$(mktemp -d /var/tmp/codedance-rootfs.XXXXXX)
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" EXIT
  rootfs=$work/rootfs
  mkdir -p "$debs_cache/mmdebstrap"
  if command -v mmdebstrap >/dev/null; then
    # mmdebstrap: one apt run instead of debootstrap's package-by-package second stage (measured here under load:
    # 38 s CPU / 125 s wall with cold downloads vs 63 s CPU / 192 s wall for debootstrap with cached .debs).
    log "mmdebstrap bookworm (essential + $debian_packages) from $mirror"
    mmdebstrap --variant=essential --include="$debian_packages" \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
      --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
      --setup-hook="sync-in $debs_cache/mmdebstrap /var/cache/apt/archives/" \
      --customize-hook="sync-out /var/cache/apt/archives $debs_cache/mmdebstrap" \
      bookworm "$rootfs" "$mirror" >"$work/bootstrap.log" 2>&1 || { tail -20 "$work/bootstrap.log" >&2; exit 1; }
  elif command -v debootstrap >/dev/null; then
    log "debootstrap bookworm (minbase + $debian_packages) from $mirror"
    debootstrap --variant=minbase --cache-dir="$debs_cache" --include="$debian_packages" \
      bookworm "$rootfs" "$mirror" >"$work/bootstrap.log" 2>&1 || { tail -20 "$work/bootstrap.log" >&2; exit 1; }
  else
    log "neither mmdebstrap nor debootstrap is installed (apt-get install mmdebstrap, or scripts/system_deps.sh)"
    exit 1
  fi

  pip=$repo/.venv/bin/pip
  [[ -x $pip ]] || pip="python3 -m pip"
  arch=$(uname -m)
  log "installing ${wheels[*]} for the image's python 3.11"
  $pip install -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform "manylinux2014_$arch" --platform "manylinux_2_28_$arch" --python-version 3.11 --implementation cp --abi cp311 \
    --target "$rootfs/usr/local/lib/python3.11/dist-packages" "${wheels[@]}"

  # The unprivileged user the worker runs as (the container also gets --user, this gives it a name).
  echo "sandbox:x:$sandbox_uid:$sandbox_uid:codedance sandbox:/tmp:/usr/sbin/nologin" >>"$rootfs/etc/passwd"
  echo "sandbox:x:$sandbox_uid:" >>"$rootfs/etc/group"
  mkdir -p "$rootfs/opt/codedance"

  chroot "$rootfs" /sbin/ldconfig  # pyseccomp finds libseccomp through the ld.so cache

  # Prebuilt matplotlib font cache: the container copies it into its /tmp tmpfs at start (MPLCONFIGDIR must be
  # writable or matplotlib rebuilds the cache in a temp dir on every start).
  chroot "$rootfs" env MPLCONFIGDIR=/opt/codedance/mplconfig MPLBACKEND=Agg python3 -c '
import cv2, numpy, PIL.Image, seccomp, pyseccomp, matplotlib.pyplot as plt
from matplotlib import font_manager
plt.figure(); plt.plot([0, 1]); plt.close("all")
print("cv2", cv2.__version__, "numpy", numpy.__version__, "PIL", PIL.__version__)' >&2
  chmod -R a+rX "$rootfs/opt/codedance"

  # Smaller and harder: no docs/locales/apt lists, no setuid/setgid binaries.
  # (perl: only mailcap's dependency, nothing in the sandbox uses it; perl-base stays for dpkg.)
  rm -rf "$rootfs"/usr/share/{doc,man,info,locale,lintian,perl} "$rootfs"/usr/lib/*-linux-gnu/perl \
    "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/*
  find "$rootfs" -xdev -perm /6000 -type f -exec chmod ug-s {} +

  log "docker import as $base"
  tar --numeric-owner -C "$rootfs" -c . | docker import \
    --change "LABEL org.codedance.base-sha256=$base_hash" \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV LANG=C.UTF-8" \
    - "$base" >/dev/null
  rm -rf "$work"
  trap - EXIT
}

if [[ $(label_of "$base" org.codedance.base-sha256) != "$base_hash" ]]; then
  build_base
else
  log "base $base exists"
fi

# Worker layer: create a stopped container from the base, copy the worker folder in (exactly the hashed files,
# readable by session uids), commit with labels/config.
log "adding worker ${worker_hash:0:12} -> $image"
old_id=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
cid=$(docker create --network none "$base" /bin/true)
stage=$(mktemp -d)
trap 'docker rm -f "$cid" >/dev/null 2>&1 || true; rm -rf "$stage"' EXIT
mkdir -m 0755 "$stage/worker"
worker_files | (cd "$worker" && xargs -0 -r cp --parents -t "$stage/worker")
chmod -R u=rwX,go=rX "$stage/worker"
docker cp "$stage/worker" "$cid:/opt/codedance/worker"
docker commit \
  --change "LABEL org.codedance.worker-sha256=$worker_hash" \
  --change "LABEL org.codedance.base-sha256=$base_hash" \
  --change "ENV PYTHONDONTWRITEBYTECODE=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MPLBACKEND=Agg" \
  --change "USER $sandbox_uid:$sandbox_uid" \
  --change "WORKDIR /tmp" \
  --change 'CMD ["python3", "/opt/codedance/worker"]' \
  "$cid" "$image" >/dev/null
new_id=$(docker image inspect --format '{{.Id}}' "$image")
if [[ -n $old_id && $old_id != "$new_id" ]]; then docker image rm "$old_id" >/dev/null 2>&1 || true; fi
# Base layers of earlier recipes are dead weight (~400 MB each); images still using them keep them alive.
docker images --format '{{.Repository}}:{{.Tag}}' codedance-sandbox-base | grep -v ":${base_hash:0:12}\$" \
  | xargs -r docker image rm >/dev/null 2>&1 || true
log "built $image"
