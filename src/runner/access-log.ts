// tcp_proxy access logs: Envoy's format strings (docs: configuration/observability/access_log/usage)
// compiled once into a function. Operators this runner cannot fill are refused at load time.
import type { AccessLogConfig } from "../envoy/model.js";
import { LineLog } from "../server/log-file.js";

export interface AccessRecord {
  startTime: Date;
  upstreamCluster: string | undefined;
  downstreamRemote: string;
  downstreamLocal: string;
  upstreamHost: string | undefined;
  bytesSent: number;
  bytesReceived: number;
  durationMs: number;
  /** Envoy's short response flags: NC (no cluster), UH (no healthy host), UF (connect failure)… */
  responseFlags: readonly string[];
  /** Set for HTTP requests. */
  http?: { method: string; path: string; protocol: string; status: number; header: (name: string) => string | undefined };
  /** The connection's (or request's) filter state, as strings. */
  filterState?: ReadonlyMap<string, string>;
  /** The connection's dynamic metadata: namespace → key → string. */
  dynamicMetadata?: ReadonlyMap<string, ReadonlyMap<string, string>>;
}

type Field = (record: AccessRecord) => string;

const dash = (value: string | undefined): string => (value === undefined || value === "" ? "-" : value);

const OPERATORS: Record<string, Field> = {
  START_TIME: (r) => r.startTime.toISOString(),
  UPSTREAM_CLUSTER: (r) => dash(r.upstreamCluster),
  DOWNSTREAM_REMOTE_ADDRESS: (r) => r.downstreamRemote,
  DOWNSTREAM_LOCAL_ADDRESS: (r) => r.downstreamLocal,
  UPSTREAM_HOST: (r) => dash(r.upstreamHost),
  BYTES_SENT: (r) => String(r.bytesSent),
  BYTES_RECEIVED: (r) => String(r.bytesReceived),
  DURATION: (r) => String(r.durationMs),
  RESPONSE_FLAGS: (r) => (r.responseFlags.length === 0 ? "-" : r.responseFlags.join(",")),
  // On a TCP connection the HTTP operators print what Envoy prints there.
  PROTOCOL: (r) => r.http?.protocol ?? "-",
  RESPONSE_CODE: (r) => String(r.http?.status ?? 0),
};
const REQUEST_HEADER = /^REQ\(([^)]*)\)$/;
const FILTER_STATE = /^FILTER_STATE\(([^)]*)\)$/;
const DYNAMIC_METADATA = /^DYNAMIC_METADATA\(([^)]*)\)(?::(\d+))?$/;

/**
 * %DYNAMIC_METADATA(NAMESPACE:KEY):Z%: a string value as it is, a namespace without KEY as its
 * JSON object, "-" when absent; Z truncates (docs: access_log/usage, DYNAMIC_METADATA). Values
 * here are strings, one level deep (what the proxy_protocol listener filter writes).
 */
function dynamicMetadata(spec: string, length: string | undefined): Field {
  const [namespace = "", key, ...deeper] = spec.split(":");
  const limit = length === undefined ? Infinity : Number(length);
  return (record) => {
    const fields = record.dynamicMetadata?.get(namespace);
    if (fields === undefined) return "-";
    if (key === undefined) return JSON.stringify(Object.fromEntries(fields)).slice(0, limit);
    const value = deeper.length > 0 ? undefined : fields.get(key);
    return value === undefined ? "-" : value.slice(0, limit);
  };
}

/**
 * %FILTER_STATE(KEY:F:Z)%: PLAIN prints the value as it is, TYPED (the default) as its JSON
 * serialization, here a JSON string; Z truncates; "-" when the key is absent. Wasm modules'
 * proxy_set_property values are filter state `wasm.<path>` (Envoy's Context::setProperty).
 */
function filterState(spec: string): Field {
  const [key = "", format = "TYPED", length] = spec.split(":");
  if (format !== "PLAIN" && format !== "TYPED") throw new AccessLogError(`%FILTER_STATE(${spec})%: the format is PLAIN or TYPED, got '${format}'`);
  const limit = length === undefined ? Infinity : Number(length);
  return (record) => {
    const value = record.filterState?.get(key);
    if (value === undefined) return "-";
    return (format === "PLAIN" ? value : JSON.stringify(value)).slice(0, limit);
  };
}

/** %REQ(X?Y)%: header X, else Y; :method, :path and :authority are the pseudo-headers. */
function requestHeader(spec: string): Field {
  const names = spec.toLowerCase().split("?");
  return (record) => {
    for (const name of names) {
      const value = name === ":method" ? record.http?.method : name === ":path" ? record.http?.path : record.http?.header(name);
      if (value !== undefined) return value;
    }
    return "-";
  };
}

export class AccessLogError extends Error {}

export function compileFormat(format: string): Field {
  const pieces: Field[] = [];
  const pattern = /%([A-Z_]+(?:\([^)]*\))?(?::\d+)?)%/g;
  let last = 0;
  for (const match of format.matchAll(pattern)) {
    const literal = format.slice(last, match.index);
    if (literal !== "") pieces.push(() => literal);
    const name = match[1]!;
    const header = REQUEST_HEADER.exec(name)?.[1];
    const state = FILTER_STATE.exec(name)?.[1];
    const metadata = DYNAMIC_METADATA.exec(name);
    const operator = OPERATORS[name] ?? (header !== undefined ? requestHeader(header) : state !== undefined ? filterState(state)
      : metadata !== null ? dynamicMetadata(metadata[1]!, metadata[2]) : undefined);
    if (operator === undefined) {
      throw new AccessLogError(`format operator %${name}% is not supported by the local runner (supported: ${[...Object.keys(OPERATORS), "REQ(X?Y)", "FILTER_STATE(KEY:F:Z)", "DYNAMIC_METADATA(NAMESPACE:KEY):Z"].map((o) => `%${o}%`).join(" ")})`);
    }
    pieces.push(operator);
    last = match.index + match[0].length;
  }
  const tail = format.slice(last);
  if (tail !== "") pieces.push(() => tail);
  return (record) => pieces.map((piece) => piece(record)).join("");
}

export type AccessLog = LineLog<AccessRecord>;

/** Compiles the format and opens the file; throws (AccessLogError) naming the operator or the path at fault. */
export async function openAccessLog(config: AccessLogConfig, onWriteError: (error: Error) => void): Promise<AccessLog> {
  const render = compileFormat(config.format);
  try {
    return await LineLog.open(config.path, render, onWriteError);
  } catch (error) {
    throw new AccessLogError((error as Error).message);
  }
}
