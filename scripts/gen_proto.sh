#!/usr/bin/env bash
# Regenerates the Python stubs from proto/ into client/embedspace/v1/.
# With --check, regenerates into a temporary folder and fails if the committed
# stubs differ (CI runs this).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
out="client"
if [[ "${1:-}" == "--check" ]]; then
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out/embedspace/v1"
"$PY" -m grpc_tools.protoc -I proto \
  --python_out="$out" --pyi_out="$out" \
  --grpc_python_out="$out" \
  --plugin=protoc-gen-mypy_grpc="$(dirname "$(command -v "$PY")")/protoc-gen-mypy_grpc" \
  --mypy_grpc_out="$out" \
  proto/embedspace/v1/*.proto
if [[ "${1:-}" == "--check" ]]; then
  for f in "$out"/embedspace/v1/*; do
    name="embedspace/v1/$(basename "$f")"
    if ! cmp -s "$f" "client/$name"; then
      echo "stale generated file: client/$name (run scripts/gen_proto.sh)" >&2
      diff -u "client/$name" "$f" | head -20 >&2 || true
      exit 1
    fi
  done
  echo "generated stubs are fresh"
fi
