// Where a module's bytes go: its sections, and its code by the callbacks that reach it (Envoy calls
// proxy_on_configure once per configuration, the connection and request callbacks per connection
// or request), with the largest functions. What it shows is what a smaller module would have to
// give up. Build the filter with names first:
//   node scripts/build-filter.mjs filter/wasmerang.ts /tmp/named.wasm --debug
// Usage: node --import tsx bench/module-size.ts MODULE.wasm
import { readFileSync } from "node:fs";
import binaryen from "binaryen";

const SECTION_NAMES = ["custom", "type", "import", "function", "table", "memory", "global", "export", "start", "element", "code", "data", "data count"];

/** Callbacks by when Envoy calls them (the module's start, `_initialize`, with configure); functions in the table count as lifecycle. */
const PHASES: Record<string, string[]> = {
  configure: ["_initialize", "proxy_on_configure", "proxy_on_vm_start", "proxy_on_tick"],
  connection: ["proxy_on_new_connection", "proxy_on_downstream_data", "proxy_on_upstream_data", "proxy_on_downstream_connection_close",
    "proxy_on_upstream_connection_close"],
  request: ["proxy_on_request_headers", "proxy_on_request_body", "proxy_on_request_trailers", "proxy_on_response_headers",
    "proxy_on_response_body", "proxy_on_response_trailers", "proxy_on_http_call_response", "proxy_on_grpc_receive"],
  lifecycle: ["proxy_on_context_create", "proxy_on_done", "proxy_on_log", "proxy_on_delete", "proxy_on_memory_allocate", "proxy_abi_version_0_2_1"],
};

interface Layout {
  sections: [string, number][];
  /** Code body size by function name (imports excluded). */
  bodies: Map<string, number>;
}

/** Section sizes and function body sizes, from the binary (the format: the WebAssembly core spec, "Binary Format"). */
function layout(bytes: Buffer): Layout {
  let at = 8;
  const leb = (): number => {
    let value = 0;
    let shift = 0;
    let byte: number;
    do {
      byte = bytes[at++]!;
      value += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte & 0x80);
    return value;
  };
  const name = (): string => {
    const length = leb();
    at += length;
    return bytes.toString("utf8", at - length, at);
  };
  const sections: [string, number][] = [];
  const sizes: number[] = [];
  const names = new Map<number, string>();
  let imported = 0;
  while (at < bytes.length) {
    const id = bytes[at++]!;
    const size = leb();
    const end = at + size;
    sections.push([id === 0 ? `custom ${name()}` : SECTION_NAMES[id] ?? `section ${id}`, size]);
    if (id === 2) {
      for (let count = leb(); count > 0; count--) {
        name();
        name();
        const kind = bytes[at++]!;
        if (kind === 0) {
          leb();
          imported++;
        } else if (kind === 1 || kind === 2) {
          if (kind === 1) at++;
          const flags = leb();
          leb();
          if (flags & 1) leb();
        } else {
          at += 2;
        }
      }
    } else if (id === 10) {
      for (let count = leb(); count > 0; count--) {
        const length = leb();
        sizes.push(length);
        at += length;
      }
    } else if (id === 0 && sections.at(-1)![0] === "custom name") {
      while (at < end) {
        const subsection = bytes[at++]!;
        const length = leb();
        const next = at + length;
        if (subsection === 1) for (let count = leb(); count > 0; count--) names.set(leb(), name());
        at = next;
      }
    }
    at = end;
  }
  return { sections, bodies: new Map(sizes.map((size, index) => [names.get(index + imported) ?? `function ${index + imported}`, size])) };
}

/** A `$name` in Binaryen's text: plain, or quoted when it has characters the text format does not allow. */
const NAME = String.raw`\$(?:"([^"]+)"|([^\s)"]+))`;
const nameOf = (match: RegExpMatchArray, at = 1): string => match[at] ?? match[at + 1]!;

/** Who calls whom, from Binaryen's text of the module (direct calls and functions referenced as values). */
function callGraph(text: string): { calls: Map<string, Set<string>>; exports: Map<string, string>; table: string[]; start: string | undefined } {
  const calls = new Map<string, Set<string>>();
  let current: Set<string> | undefined;
  for (const line of text.split("\n")) {
    const header = new RegExp(`^ \\(func ${NAME}`).exec(line);
    if (header !== null) {
      current = new Set();
      calls.set(nameOf(header), current);
      continue;
    }
    for (const match of line.matchAll(new RegExp(`\\((?:call|return_call|ref\\.func) ${NAME}`, "g"))) current?.add(nameOf(match));
  }
  const exports = new Map([...text.matchAll(new RegExp(`^ \\(export "([^"]+)" \\(func ${NAME}\\)\\)`, "gm"))]
    .map((match) => [match[1]!, nameOf(match, 2)]));
  const table = [...text.matchAll(/^ \(elem [^\n]*/gm)].flatMap((match) => [...match[0].matchAll(new RegExp(NAME, "g"))].map((name) => nameOf(name)));
  const start = new RegExp(`^ \\(start ${NAME}\\)`, "m").exec(text);
  return { calls, exports, table, start: start === null ? undefined : nameOf(start) };
}

function reachable(roots: string[], calls: Map<string, Set<string>>): Set<string> {
  const seen = new Set<string>();
  const pending = [...roots];
  while (pending.length > 0) {
    const name = pending.pop()!;
    if (seen.has(name) || !calls.has(name)) continue;
    seen.add(name);
    pending.push(...calls.get(name)!);
  }
  return seen;
}

const file = process.argv[2];
if (file === undefined) {
  console.error("usage: module-size.ts MODULE.wasm (built with names: scripts/build-filter.mjs … --debug)");
  process.exit(2);
}
const bytes = readFileSync(file);
const { sections, bodies } = layout(bytes);
if (!sections.some(([section]) => section === "custom name")) {
  console.error(`${file} has no function names: build it with scripts/build-filter.mjs … --debug`);
  process.exit(2);
}
const module = binaryen.readBinary(bytes);
const graph = callGraph(module.emitText());
module.dispose();

const roots = Object.fromEntries(Object.entries(PHASES).map(([phase, callbacks]) => [phase,
  callbacks.map((callback) => graph.exports.get(callback)).filter((name): name is string => name !== undefined)]));
if (graph.start !== undefined) roots.configure!.push(graph.start);
roots.lifecycle!.push(...graph.table);
const reached = Object.fromEntries(Object.entries(roots).map(([phase, names]) => [phase, reachable(names, graph.calls)]));

const byPhases = new Map<string, number>();
for (const [name, size] of bodies) {
  const phases = Object.keys(reached).filter((phase) => reached[phase]!.has(name));
  const key = phases.length === 0 ? "none" : phases.join(" + ");
  byPhases.set(key, (byPhases.get(key) ?? 0) + size);
}

const kb = (size: number) => `${(size / 1024).toFixed(1)} KB`.padStart(8);
console.log(`${file}: ${bytes.length} bytes`);
for (const [section, size] of sections) console.log(`  ${kb(size)}  ${section}`);
console.log("\nCode by the callbacks that reach it (function bodies):");
for (const [phases, size] of [...byPhases].sort((a, b) => b[1] - a[1])) console.log(`  ${kb(size)}  ${phases}`);
console.log("\nLargest functions:");
for (const [name, size] of [...bodies].sort((a, b) => b[1] - a[1]).slice(0, 20)) console.log(`  ${String(size).padStart(6)}  ${name}`);
