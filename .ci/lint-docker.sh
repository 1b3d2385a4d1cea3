#!/usr/bin/env bash
# Lints the Docker files without a Docker engine (none runs here or in CI): the Dockerfile with
# dockerfile-utils (the validator behind VS Code's Dockerfile language server; any warning fails),
# and the image's shell scripts plus the CI scripts with shellcheck.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v shellcheck >/dev/null || { echo "lint-docker: shellcheck is missing (Debian: apt-get install shellcheck)" >&2; exit 1; }
dfu=node_modules/.bin/dockerfile-utils
[ -x "$dfu" ] || { echo "lint-docker: $dfu is missing (run npm ci)" >&2; exit 1; }

status=0
if [ "$("$dfu" lint --json Dockerfile)" != "[]" ]; then
  echo "lint-docker: dockerfile-utils found problems in Dockerfile:" >&2
  "$dfu" lint Dockerfile >&2 || true
  status=1
else
  echo "Dockerfile: dockerfile-utils $("$dfu" --version | awk '{print $3}'): no problems"
fi

scripts=(docker/*.sh docker/initdb/*.sh .ci/run .ci/lint-docker.sh)
if shellcheck "${scripts[@]}"; then
  echo "shell scripts: $(shellcheck --version | awk '/^version:/ {print "shellcheck " $2}'): no problems in ${scripts[*]}"
else
  status=1
fi
exit "$status"
