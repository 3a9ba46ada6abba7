// The type the schema is generated from: Grafana's dashboard JSON model, through the
// package's public export (see generate.sh).
export type { Dashboard } from "@grafana/schema/dist/esm/raw/dashboard/x/Dashboard_types.gen";
