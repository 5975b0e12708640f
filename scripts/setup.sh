#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine. Idempotent.
# The C compiler for -race (cgo), SoftHSM2 (the PKCS#11 module the HSM seal
# tests run against) and PostgreSQL's server binaries (the database engine's
# tests start a throwaway server from them).
set -euo pipefail

need=()
command -v gcc >/dev/null 2>&1 || need+=(gcc)
command -v softhsm2-util >/dev/null 2>&1 || need+=(softhsm2)
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing ${need[*]}; run as root or install them" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
command -v go >/dev/null 2>&1 || { echo "setup: Go is not on PATH (expected /usr/local/go/bin)" >&2; exit 1; }
