// Connection attributes with Envoy's names and encodings
// (docs/root/intro/arch_overview/advanced/attributes.rst): addresses are strings `IP:PORT`
// (IPv6 in brackets), ports and ids are 8-byte little-endian integers, booleans one byte.
import { isIP } from "node:net";

export interface Endpoint {
  address: string;
  port: number;
}

/** Dynamic metadata as listener filters write it: namespace → key → string value. */
export type DynamicMetadata = Map<string, Map<string, string>>;

export interface ConnectionInfo {
  /** Envoy's connection.id: unique per connection for the life of the process. */
  connectionId: number;
  source: Endpoint;
  destination: Endpoint;
  /** SNI read by the tls_inspector listener filter; "" when none. */
  serverName: string;
  mtls: boolean;
  /** The connection's dynamic metadata (the proxy_protocol listener filter's TLV rules). */
  dynamicMetadata?: DynamicMetadata;
}

export interface PluginIdentity {
  name: string;
  rootId: string;
  vmId: string;
}

export function formatEndpoint(endpoint: Endpoint): string {
  // Only IPv6 addresses contain a colon (cheaper than isIPv6's regex on every connection).
  return endpoint.address.includes(":") ? `[${endpoint.address}]:${endpoint.port}` : `${endpoint.address}:${endpoint.port}`;
}

/** Paths seen so far; bounded, since the guest chooses them. */
const dottedPaths = new Map<string, string>();
const MAX_DOTTED_PATHS = 1024;

/** A guest's property path (segments separated by NUL) as the attribute's dotted name. */
export function dottedPath(path: string): string {
  let dotted = dottedPaths.get(path);
  if (dotted === undefined) {
    dotted = path.replaceAll("\0", ".");
    if (dottedPaths.size < MAX_DOTTED_PATHS) dottedPaths.set(path, dotted);
  }
  return dotted;
}

export function u64(value: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(BigInt(value));
  return out;
}

/** Plugin attributes, readable from every context. */
export function pluginProperty(key: string, plugin: PluginIdentity): Buffer | undefined {
  switch (key) {
    case "plugin_name":
      return Buffer.from(plugin.name);
    case "plugin_root_id":
      return Buffer.from(plugin.rootId);
    case "plugin_vm_id":
      return Buffer.from(plugin.vmId);
    default:
      return undefined;
  }
}

/** Connection attributes; `upstream.*` exists only once the upstream connection is up. */
export function connectionProperty(key: string, info: ConnectionInfo, upstream: Endpoint | undefined): Buffer | undefined {
  switch (key) {
    case "source.address":
      return Buffer.from(formatEndpoint(info.source));
    case "source.port":
      return u64(info.source.port);
    case "destination.address":
      return Buffer.from(formatEndpoint(info.destination));
    case "destination.port":
      return u64(info.destination.port);
    case "connection.id":
      return u64(info.connectionId);
    case "connection.requested_server_name":
      return Buffer.from(info.serverName);
    case "connection.mtls":
      return Buffer.from([info.mtls ? 1 : 0]);
    case "upstream.address":
      return upstream === undefined ? undefined : Buffer.from(formatEndpoint(upstream));
    case "upstream.port":
      return upstream === undefined ? undefined : u64(upstream.port);
    default:
      return undefined;
  }
}

/** Parses `IP:PORT` / `[IPv6]:PORT`; throws naming the text when it is neither. */
export function parseEndpoint(text: string): Endpoint {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const address = match?.[1] ?? match?.[2];
  if (match === null || address === undefined || isIP(address) === 0 || Number(match[3]) > 65535) {
    throw new Error(`'${text}' is not IP:PORT (IPv6 as [addr]:port)`);
  }
  return { address, port: Number(match[3]) };
}
