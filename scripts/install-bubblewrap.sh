#!/usr/bin/env bash
# Install bubblewrap (Debian package `bubblewrap`), the sandbox in which generated code runs (tests stage).
# Does nothing when bwrap is there; without apt-get or root it says what to do and fails.
set -euo pipefail

if command -v bwrap >/dev/null; then
    exit 0
fi
if ! command -v apt-get >/dev/null || [[ $(id -u) -ne 0 ]]; then
    echo "install-bubblewrap: bwrap is missing; install bubblewrap as root (Debian: apt-get install bubblewrap)," >&2
    echo "or set execution.sandbox: none-unsafe to run generated code without a sandbox" >&2
    exit 1
fi
echo "install-bubblewrap: installing bubblewrap (the sandbox for generated code)" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null
