// The egress router's settings, from command-line flags or a YAML file with the same names.
import { parse } from "yaml";
import { readYamlFile } from "../envoy/load.js";
import { parseEndpoint, type Endpoint } from "../host/properties.js";
import type { AccessLogFormat } from "./access-log.js";
import { Allowlist } from "./allowlist.js";

export interface EgressSettings {
  listen: Endpoint;
  /** CIDR:PORTS rules; nothing is allowed by default. */
  allow: string[];
  /** Admin endpoint (stats); loopback unless asked otherwise. */
  admin?: Endpoint;
  headerTimeoutMs: number;
  connectTimeoutMs: number;
  /** A forwarded connection with no byte either way for this long is closed (default 1 h, tcp_proxy's; 0: never). */
  idleTimeoutMs?: number;
  maxConnections: number;
  /** Access log file, "-" for stdout. */
  accessLog?: string;
  /** Access log lines as text (default) or JSON. */
  accessLogFormat?: AccessLogFormat;
  /** Local address for connections to destinations (the router's egress IP). */
  bindAddress?: string;
}

export class EgressConfigError extends Error {}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export function parseDuration(value: unknown, field: string): number {
  const match = typeof value === "string" ? /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(value) : null;
  if (match === null) throw new EgressConfigError(`${field}: '${String(value)}' is not a duration such as 5s, 500ms, 10m or 1h`);
  return Number(match[1]) * UNIT_MS[match[2]!]!;
}

/** `HOST:PORT`, or a bare port on loopback: the admin endpoint is never public unless written out. */
export function parseAdminAddress(value: string): Endpoint {
  return /^\d+$/.test(value) ? { address: "127.0.0.1", port: Number(value) } : parseEndpoint(value);
}

const FIELDS = ["listen", "allow", "admin", "header_timeout", "connect_timeout", "idle_timeout", "max_connections", "access_log", "access_log_format", "bind_address"];

export async function readEgressFile(path: string): Promise<Partial<EgressSettings>> {
  const document = parse(await readYamlFile(path)) as Record<string, unknown> | null;
  if (document === null || typeof document !== "object") throw new EgressConfigError(`${path}: expected a mapping`);
  const unknown = Object.keys(document).filter((key) => !FIELDS.includes(key));
  if (unknown.length > 0) throw new EgressConfigError(`${path}: ${unknown[0]}: unknown field (expected ${FIELDS.join(", ")})`);
  const out: Partial<EgressSettings> = {};
  try {
    if (document.listen !== undefined) out.listen = parseEndpoint(String(document.listen));
    if (document.allow !== undefined) {
      if (!Array.isArray(document.allow)) throw new EgressConfigError("allow: expected a list of CIDR:PORTS");
      out.allow = document.allow.map(String);
    }
    if (document.admin !== undefined) out.admin = parseAdminAddress(String(document.admin));
    if (document.header_timeout !== undefined) out.headerTimeoutMs = parseDuration(document.header_timeout, "header_timeout");
    if (document.connect_timeout !== undefined) out.connectTimeoutMs = parseDuration(document.connect_timeout, "connect_timeout");
    if (document.idle_timeout !== undefined) out.idleTimeoutMs = parseDuration(document.idle_timeout, "idle_timeout");
    if (document.max_connections !== undefined) {
      const max = Number(document.max_connections);
      if (!Number.isInteger(max) || max < 1) throw new EgressConfigError(`max_connections: expected a whole number >= 1, got ${String(document.max_connections)}`);
      out.maxConnections = max;
    }
    if (document.access_log !== undefined) out.accessLog = String(document.access_log);
    if (document.access_log_format !== undefined) out.accessLogFormat = parseAccessLogFormat(String(document.access_log_format), "access_log_format");
    if (document.bind_address !== undefined) out.bindAddress = String(document.bind_address);
  } catch (error) {
    throw new EgressConfigError(`${path}: ${(error as Error).message}`);
  }
  return out;
}

export function parseAccessLogFormat(value: string, field: string): AccessLogFormat {
  if (value !== "text" && value !== "json") throw new EgressConfigError(`${field}: '${value}' is not text or json`);
  return value;
}

export function allowlistOf(settings: EgressSettings): Allowlist {
  return Allowlist.parse(settings.allow);
}
