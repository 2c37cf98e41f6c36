// Envoy's foreign function set_envoy_filter_state (source/extensions/common/wasm/foreign.cc) and
// the filter-state keys Envoy registers object factories for
// (docs/root/configuration/advanced/well_known_filter_state.rst). An unknown key is NotFound, a
// message that does not parse or a value the key's factory rejects is BadArgument.
import protobuf from "protobufjs";
import { isIPv6 } from "node:net";
import { parseEndpoint } from "./properties.js";
import { WasmResult, type WasmResultCode } from "./abi.js";

export const SET_ENVOY_FILTER_STATE = "set_envoy_filter_state";
export const TCP_PROXY_CLUSTER_KEY = "envoy.tcp_proxy.cluster";
/** Read first by ORIGINAL_DST clusters, before the connection's own destination. */
export const ORIGINAL_DST_ADDRESS_KEY = "envoy.network.transport_socket.original_dst_address";

const ArgumentsType = protobuf.Root.fromJSON({
  nested: {
    SetEnvoyFilterStateArguments: {
      fields: { path: { type: "string", id: 1 }, value: { type: "string", id: 2 }, span: { type: "int32", id: 3 } },
    },
  },
}).lookupType("SetEnvoyFilterStateArguments");

interface DecodedArguments {
  path: string;
  value: string;
  span: number;
}

const anyString = (_value: string): boolean => true;
const unsignedInteger = (value: string): boolean => /^\d{1,10}$/.test(value) && Number(value) <= 0xffffffff;

/** `IP:PORT` with IPv6 (and only IPv6) in brackets, as Envoy's parseInternetAddressAndPortNoThrow reads it. */
function ipAndPort(value: string): boolean {
  try {
    return value.startsWith("[") === isIPv6(parseEndpoint(value).address);
  } catch {
    return false;
  }
}

const KEY_FACTORIES: ReadonlyMap<string, (value: string) => boolean> = new Map([
  [TCP_PROXY_CLUSTER_KEY, anyString],
  ["envoy.upstream.dynamic_host", anyString],
  ["envoy.upstream.dynamic_port", unsignedInteger],
  [ORIGINAL_DST_ADDRESS_KEY, ipAndPort],
  ["envoy.network.upstream_server_name", anyString],
  ["envoy.network.application_protocols", anyString],
  ["envoy.tcp_proxy.per_connection_idle_timeout_ms", unsignedInteger],
  ["envoy.string", anyString],
]);

export interface FilterStateWrite {
  status: WasmResultCode;
  key?: string;
  value?: string;
}

/** Filters send the same few messages again and again (one per cluster): decode each once. */
const MAX_CACHED = 1024;
const cache = new Map<string, FilterStateWrite>();

/** Decodes and checks one call; the caller stores key=value when status is Ok. */
export function decodeFilterStateWrite(args: Uint8Array): FilterStateWrite {
  const key = Buffer.from(args.buffer, args.byteOffset, args.byteLength).toString("latin1");
  let write = cache.get(key);
  if (write === undefined) {
    write = decode(args);
    if (cache.size < MAX_CACHED) cache.set(key, write);
  }
  return write;
}

function decode(args: Uint8Array): FilterStateWrite {
  let decoded: DecodedArguments;
  try {
    decoded = ArgumentsType.toObject(ArgumentsType.decode(args), { defaults: true }) as DecodedArguments;
  } catch {
    return { status: WasmResult.BadArgument };
  }
  const accepts = KEY_FACTORIES.get(decoded.path);
  if (accepts === undefined) return { status: WasmResult.NotFound, key: decoded.path };
  if (decoded.span < 0 || decoded.span > 2 || !accepts(decoded.value)) return { status: WasmResult.BadArgument, key: decoded.path };
  return { status: WasmResult.Ok, key: decoded.path, value: decoded.value };
}
