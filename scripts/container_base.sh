#!/usr/bin/env bash
# Prepare podman and the local base image `localhost/base:bookworm` that the project's
# Dockerfiles build on where no image registry is reachable (see shared TESTING.md,
# "Containers without a Docker daemon: podman"). Idempotent, and cached: a second run on
# the same machine takes about a second.
#
#   scripts/container_base.sh          install what is missing, make sure the base image exists
#   scripts/container_base.sh --print  the podman command line to use, one word a line
#
# Everything lives under one cache directory (CVM_MIGRATE_CI_CACHE, default
# /var/cache/cvm-migrate-ci), shared with tests/e2e/test_containers.py:
#   containers.conf            runc, cgroupfs, file events logger, ulimits
#   storage/  run/             podman's --root and --runroot (images, build layer cache)
#   base-bookworm-KEY.tar      the debootstrap rootfs, ready to import; KEY hashes the recipe
#                              below and the host's CA bundle, so a change of either rebuilds it
#   podman                     a wrapper: `$CACHE/podman images`, `$CACHE/podman build ...`
# Slow only when cold: debootstrap (about 2 minutes, about 250 MB).
set -euo pipefail

CACHE=${CVM_MIGRATE_CI_CACHE:-/var/cache/cvm-migrate-ci}
IMAGE=localhost/base:bookworm
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
INCLUDE=python3,python3-pip,python3-venv,python-is-python3,ca-certificates
HOST_CA=/etc/ssl/certs/ca-certificates.crt
APT_PACKAGES=(podman runc catatonit debootstrap)  # catatonit: podman run --init
KEY_LABEL=cvm-migrate.base-key

CONF=$CACHE/containers.conf
pm() { CONTAINERS_CONF=$CONF podman --root "$CACHE/storage" --runroot "$CACHE/run" "$@"; }
say() { echo "container_base: $*" >&2; }

case "${1:-}" in
    "") ;;
    --print)
        printf '%s\n' env "CONTAINERS_CONF=$CONF" podman --root "$CACHE/storage" --runroot "$CACHE/run"
        exit 0 ;;
    *) echo "usage: $0 [--print]" >&2; exit 2 ;;
esac

install_packages() {
    local missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]}"
    local log
    log=$(mktemp)
    if ! { apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
        >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        rm -f "$log"
        say "apt-get install ${missing[*]} failed"
        return 1
    fi
    rm -f "$log"
}

write_config() {
    mkdir -p "$CACHE/storage" "$CACHE/run"
    # tmp_dir under run/ so that resetting run/ after a reboot resets podman's state too
    # (/run is not a tmpfs on every machine here).
    local conf
    conf=$(cat <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$CACHE/run/libpod"
EOF
)
    [ -f "$CONF" ] && [ "$(cat "$CONF")" = "$conf" ] || printf '%s\n' "$conf" >"$CONF"
    cat >"$CACHE/podman.tmp" <<EOF
#!/bin/sh
# Written by scripts/container_base.sh: podman on the project's cached storage.
CONTAINERS_CONF='$CONF' exec podman --root '$CACHE/storage' --runroot '$CACHE/run' "\$@"
EOF
    chmod 755 "$CACHE/podman.tmp"
    mv -f "$CACHE/podman.tmp" "$CACHE/podman"
}

forget_previous_boot() {
    # Containers and mounts recorded in run/ died with the previous boot.
    local boot
    boot=$(cat /proc/sys/kernel/random/boot_id)
    if [ "$(cat "$CACHE/boot_id" 2>/dev/null || true)" != "$boot" ]; then
        rm -rf "$CACHE/run"
        mkdir -p "$CACHE/run"
        echo "$boot" >"$CACHE/boot_id"
    fi
}

make_rootfs_tarball() {  # $1: the tarball to create
    local rootfs=$CACHE/rootfs.tmp
    rm -rf "$rootfs"
    say "debootstrap $SUITE (about 2 minutes)"
    debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$rootfs" "$MIRROR" \
        >"$CACHE/debootstrap.log" 2>&1 || { tail -n 30 "$CACHE/debootstrap.log" >&2; return 1; }
    # pip may install into the image's Python; the host's CA bundle lets it reach PyPI.
    rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
    cp "$HOST_CA" "$rootfs/etc/ssl/certs/ca-certificates.crt"
    # Nothing the image needs: apt's downloaded packages and lists.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar --numeric-owner --xattrs -C "$rootfs" -cf "$1.tmp" .
    mv -f "$1.tmp" "$1"
    rm -rf "$rootfs"
}

main() {
    if [ "$(id -u)" -ne 0 ]; then
        say "run as root: podman runs rootful here, and apt-get installs it"
        return 1
    fi
    install_packages
    mkdir -p "$CACHE"
    exec 9>"$CACHE/lock"
    flock 9  # one preparation at a time per cache
    write_config
    forget_previous_boot

    local key tarball
    key=$(printf '%s\n' "$SUITE" "$MIRROR" "$INCLUDE" "$(sha256sum <"$HOST_CA")" | sha256sum | cut -c1-12)
    tarball=$CACHE/base-$SUITE-$key.tar
    # Bound the build cache: dangling images (old builds, and build stages no build has
    # re-created for a week) go; the next build redoes what it still needs.
    pm image prune --force --filter until=168h >/dev/null
    if [ "$(pm image inspect --format "{{index .Labels \"$KEY_LABEL\"}}" "$IMAGE" 2>/dev/null)" = "$key" ]; then
        say "$IMAGE is ready (cache $CACHE)"
        return 0
    fi
    if [ ! -f "$tarball" ]; then
        find "$CACHE" -maxdepth 1 -name "base-$SUITE-*.tar" -delete  # other recipes' tarballs
        make_rootfs_tarball "$tarball"
    fi
    say "importing $IMAGE"
    pm import -q --change "LABEL $KEY_LABEL=$key" --change 'CMD ["python3"]' "$tarball" "$IMAGE" >/dev/null
    say "$IMAGE is ready (cache $CACHE)"
}

main
