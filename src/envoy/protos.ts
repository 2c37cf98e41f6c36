// Envoy's own API protos, as shipped by @grpc/grpc-js-xds (deps/envoy-api and the repositories it
// imports), loaded once with protobufjs. Field names are kept as written in the .proto files,
// which is how Envoy's YAML spells them.
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import protobuf from "protobufjs";

const require = createRequire(import.meta.url);
const DEPS = join(dirname(require.resolve("@grpc/grpc-js-xds/package.json")), "deps");
const INCLUDE_DIRS = [
  ...["envoy-api", "xds", "googleapis", "protoc-gen-validate"].map((dir) => join(DEPS, dir)),
  // google/protobuf/descriptor.proto, which protobufjs ships but does not preload.
  dirname(require.resolve("protobufjs/package.json")),
];

/** Every message type a supported config may name, directly or in an Any's @type. */
const ENTRY_FILES = [
  "envoy/config/bootstrap/v3/bootstrap.proto",
  "envoy/extensions/filters/network/wasm/v3/wasm.proto",
  "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto",
  "envoy/extensions/filters/network/rbac/v3/rbac.proto",
  "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
  "envoy/extensions/filters/http/wasm/v3/wasm.proto",
  "envoy/extensions/filters/http/router/v3/router.proto",
  "envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto",
  "envoy/extensions/filters/listener/proxy_protocol/v3/proxy_protocol.proto",
  "envoy/extensions/filters/listener/original_dst/v3/original_dst.proto",
  "envoy/extensions/transport_sockets/proxy_protocol/v3/upstream_proxy_protocol.proto",
  "envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto",
  "envoy/extensions/access_loggers/file/v3/file.proto",
  "envoy/extensions/access_loggers/stream/v3/stream.proto",
];

/**
 * Held weakly: loading takes about 0.1 s, and keeping the 5 MB of types for the life of a runner
 * that validates once (and again on reload) makes every full collection mark them — on the data
 * path, where V8 runs full collections for the memory of socket read buffers.
 */
let cached: WeakRef<protobuf.Root> | undefined;

export function envoyProtos(): protobuf.Root {
  const root = cached?.deref();
  if (root !== undefined) return root;
  const loaded = new protobuf.Root();
  loaded.resolvePath = (origin, target) => {
    if (target.startsWith("google/protobuf/") && protobuf.common.get(target) !== null) return target;
    for (const dir of INCLUDE_DIRS) {
      const candidate = join(dir, target);
      if (existsSync(candidate)) return candidate;
    }
    return protobuf.util.path.resolve(origin, target);
  };
  loaded.loadSync(ENTRY_FILES, { keepCase: true });
  loaded.resolveAll();
  cached = new WeakRef(loaded);
  return loaded;
}
