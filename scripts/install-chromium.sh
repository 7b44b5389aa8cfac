#!/usr/bin/env bash
# Install headless Chromium (Debian package `chromium`) for tests/test_report_workflow.py, which opens
# the Snakemake report as a user would. Does nothing when it is there; skips (exit 0) without apt-get or root,
# and the test then skips with its reason.
set -euo pipefail

if [[ -x /usr/bin/chromium ]]; then
    exit 0
fi
if ! command -v apt-get >/dev/null || [[ $(id -u) -ne 0 ]]; then
    echo "install-chromium: no apt-get or not root; the report test will be skipped" >&2
    exit 0
fi
echo "install-chromium: installing chromium (for the report test)" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
