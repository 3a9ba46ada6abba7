#!/usr/bin/env bash
# Regenerate dashboard.schema.json: Grafana's own dashboard model (the TypeScript types
# of the npm package @grafana/schema, pinned in package-lock.json) as JSON Schema.
# CI runs this and fails on a diff, as it does for common/pb:
#   bash tests/dashboard_schema/generate.sh && git diff --exit-code -- tests/dashboard_schema
# The tests read only the committed schema, so they need no npm.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
# dashboard.ts re-exports `Dashboard` from the package's public export
# (@grafana/schema/dist/esm/raw/dashboard/x/Dashboard_types.gen), not from a file path
# inside it. ts-json-schema-generator closes every object (additionalProperties: false),
# so a misspelt or misplaced key fails validation too.
npx --no-install ts-json-schema-generator \
    --path dashboard.ts --tsconfig tsconfig.json --type Dashboard \
    --out dashboard.schema.json
