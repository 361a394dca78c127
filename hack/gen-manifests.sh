#!/usr/bin/env bash
# Regenerates manifests/install.yaml from the helm chart (default values, release
# mysqlmq-operator, namespace mysqlmq-system, CRDs included), keeping its header.
# test/e2e/packaging.test.ts fails when the file differs from this output.
#
# Usage: bash hack/gen-manifests.sh
set -euo pipefail
cd "$(dirname "$0")/.."
HELM=$(bash hack/helm.sh | tail -n 1)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
{
  sed -n '1,/^# END HEADER/p' manifests/install.yaml
  printf -- '---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: mysqlmq-system\n  labels:\n    app.kubernetes.io/part-of: mysqlmq\n'
  "$HELM" template mysqlmq-operator helm/mysqlmq-operator --namespace mysqlmq-system --include-crds
} >"$out"
cp "$out" manifests/install.yaml
echo "manifests/install.yaml regenerated" >&2
