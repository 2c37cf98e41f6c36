// Envoy's own API protos, as shipped by @grpc/grpc-js-xds (deps/envoy-api and the repositories it
// imports), loaded with protobufjs file by file as a configuration names their types. Field names
// are kept as written in the .proto files, which is how Envoy's YAML spells them.
import { createRequire } from "node:module";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import protobuf from "protobufjs";

const require = createRequire(import.meta.url);
const DEPS = join(dirname(require.resolve("@grpc/grpc-js-xds/package.json")), "deps");
const API_DIRS = ["envoy-api", "xds", "googleapis", "protoc-gen-validate"].map((dir) => join(DEPS, dir));
const INCLUDE_DIRS = [
  ...API_DIRS,
  // google/protobuf/descriptor.proto, which protobufjs ships but does not preload.
  dirname(require.resolve("protobufjs/package.json")),
];

/** Where the shipped API comes from, for messages about types it lacks. */
export const SHIPPED_API = "the Envoy API shipped with this validator (about v1.31: contrib or newer)";

const BOOTSTRAP_FILE = "envoy/config/bootstrap/v3/bootstrap.proto";

function includePath(target: string): string | undefined {
  if (target.startsWith("google/protobuf/") && protobuf.common.get(target) !== null) return target;
  for (const dir of INCLUDE_DIRS) {
    const candidate = join(dir, target);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

function protoFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(".proto"))
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)));
}

const IMPORT = /^import\s+(?:public\s+|weak\s+)?"([^"]+)";/gm;
const PACKAGE = /^package\s+([\w.]+)\s*;/m;
const TOP_LEVEL_MESSAGE = /^message\s+(\w+)\s*\{/gm;

/**
 * Top-level message name → the file declaring it, for every shipped file whose imports are all
 * shipped too (a few, such as the OpenCensus tracer, import repositories the package leaves out).
 * Built by reading the files' text, which is far cheaper than parsing all of them.
 */
class ApiIndex {
  private readonly files = new Map<string, string>();
  private readonly loadable = new Map<string, boolean>();

  constructor() {
    for (const dir of API_DIRS) {
      for (const file of protoFiles(dir)) {
        if (/\/v2(alpha\d*)?\//.test(file)) continue;
        const text = readFileSync(join(dir, file), "utf8");
        const pkg = PACKAGE.exec(text)?.[1];
        if (pkg === undefined) continue;
        for (const match of text.matchAll(TOP_LEVEL_MESSAGE)) {
          if (!this.files.has(`${pkg}.${match[1]}`)) this.files.set(`${pkg}.${match[1]}`, file);
        }
      }
    }
  }

  /** The file to load for a fully qualified message name (nested names resolve to their outermost message). */
  fileOf(fullName: string): string | undefined {
    const parts = fullName.split(".");
    for (let end = parts.length; end > 1; end--) {
      const file = this.files.get(parts.slice(0, end).join("."));
      if (file !== undefined) return this.isLoadable(file) ? file : undefined;
    }
    return undefined;
  }

  private isLoadable(file: string, visiting = new Set<string>()): boolean {
    const known = this.loadable.get(file);
    if (known !== undefined) return known;
    if (visiting.has(file)) return true;
    visiting.add(file);
    const path = includePath(file);
    let result = path !== undefined;
    if (result && !path!.startsWith("google/protobuf/")) {
      for (const match of readFileSync(path!, "utf8").matchAll(IMPORT)) {
        if (!this.isLoadable(match[1]!, visiting)) result = false;
      }
    }
    this.loadable.set(file, result);
    return result;
  }
}

export class EnvoyApi {
  private index: ApiIndex | undefined;
  private readonly loaded = new Set<string>();

  constructor(readonly root: protobuf.Root) {}

  /** A message type by its fully qualified name, loading its file on first use; undefined if not shipped. */
  message(fullName: string): protobuf.Type | undefined {
    const found = this.exact(fullName);
    if (found instanceof protobuf.Type) return found;
    if (found !== undefined) return undefined;
    this.index ??= new ApiIndex();
    const file = this.index.fileOf(fullName);
    if (file === undefined || this.loaded.has(file)) return undefined;
    this.load(file);
    const loaded = this.exact(fullName);
    return loaded instanceof protobuf.Type ? loaded : undefined;
  }

  /** Exactly this name: protobufjs's lookup also searches nested and parent scopes, so "Router" would find one. */
  private exact(fullName: string): protobuf.ReflectionObject | undefined {
    let node: protobuf.ReflectionObject | null = this.root;
    for (const part of fullName.split(".")) {
      node = node instanceof protobuf.Namespace ? node.get(part) : null;
      if (node === null) return undefined;
    }
    return node;
  }

  load(file: string): void {
    this.loaded.add(file);
    this.root.loadSync(file, { keepCase: true });
    this.root.resolveAll();
  }
}

/**
 * Held weakly: the types take megabytes, and keeping them for the life of a runner that validates
 * once (and again on reload) makes every full collection mark them — on the data path, where V8
 * runs full collections for the memory of socket read buffers.
 */
let cached: WeakRef<EnvoyApi> | undefined;

export function envoyApi(): EnvoyApi {
  const api = cached?.deref();
  if (api !== undefined) return api;
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => includePath(target) ?? protobuf.util.path.resolve(origin, target);
  const loaded = new EnvoyApi(root);
  loaded.load(BOOTSTRAP_FILE);
  cached = new WeakRef(loaded);
  return loaded;
}
