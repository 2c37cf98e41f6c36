// Every function the host calls, for a filter's entry file: `export * from "wasmerang/sdk/exports"`.
export * from "../filter/sdk/exports";
