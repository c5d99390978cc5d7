#!/usr/bin/env bash
# Install what a fresh machine lacks to build and test chainwatch:
# - tansu, a Kafka-protocol broker, for the integration tests (skipped when that version is on PATH);
# - system packages: a C toolchain, pkg-config and zlib to build librdkafka; Prometheus
#   (prometheus, promtool) and Alertmanager (amtool) for the dashboard/rule tests and checks;
#   Chromium for the status page test (headless);
# - rustfmt and clippy for `make check`, which CI runs before the tests.
set -euo pipefail

TANSU_VERSION=0.6.0

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
dpkg -s zlib1g-dev >/dev/null 2>&1 || need_apt+=(zlib1g-dev)
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v amtool >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if command -v rustup >/dev/null 2>&1; then
  need_rustup=()
  cargo fmt --version >/dev/null 2>&1 || need_rustup+=(rustfmt)
  cargo clippy --version >/dev/null 2>&1 || need_rustup+=(clippy)
  if [ ${#need_rustup[@]} -gt 0 ]; then
    echo "install-deps: rustup component add ${need_rustup[*]}"
    rustup component add "${need_rustup[@]}"
  fi
fi

if tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
  echo "install-deps: tansu $TANSU_VERSION already installed"
else
  echo "install-deps: cargo install tansu $TANSU_VERSION (takes several minutes)"
  cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql --quiet
fi
