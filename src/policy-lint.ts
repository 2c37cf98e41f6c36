// Policy lint: what is legal but almost surely a mistake in a policy the module accepted. It
// reasons about what each rule's matchers cover (CIDR containment, port ranges, name patterns,
// parity), never about a connection: where a connection goes is only ever decided by the module
// (explain, test). A finding is claimed only when it holds; coverage by a union of several
// earlier rules is not looked for, except the even/odd pair that covers every source.
import { BlockList, isIP } from "node:net";

export interface LintFinding {
  /** Inside the policy: `rules[3]`, `rules[3].action.hash`, `default`. */
  path: string;
  message: string;
}

type Json = Record<string, unknown>;

interface Cidr {
  family: "ipv4" | "ipv6";
  address: string;
  prefix: number;
}

interface Matchers {
  sources: Cidr[] | undefined;
  parity: "even" | "odd" | undefined;
  destinations: Cidr[] | undefined;
  ports: [number, number][] | undefined;
  serverNames: string[] | undefined;
  authorities: string[] | undefined;
  pathPrefixes: string[] | undefined;
  headers: string[] | undefined;
  /** Metadata and filter state matchers, each as one canonical string. */
  values: string[] | undefined;
}

function parseCidr(text: string): Cidr | undefined {
  const [address = "", prefix] = text.split("/");
  const version = isIP(address);
  if (version === 0) return undefined;
  const bits = version === 4 ? 32 : 128;
  return { family: version === 4 ? "ipv4" : "ipv6", address, prefix: prefix === undefined ? bits : Number(prefix) };
}

/** B lies within A: A's network holds B's and is no narrower. */
function cidrWithin(inner: Cidr, outer: Cidr): boolean {
  if (inner.family !== outer.family || inner.prefix < outer.prefix) return false;
  const list = new BlockList();
  list.addSubnet(outer.address, outer.prefix, outer.family);
  return list.check(inner.address, inner.family);
}

/** The parity of the one address a host CIDR holds (its last byte), or undefined for a network. */
function hostParity(cidr: Cidr): "even" | "odd" | undefined {
  if (cidr.prefix !== (cidr.family === "ipv4" ? 32 : 128)) return undefined;
  const last = cidr.address.split(/[.:]/).pop() ?? "";
  const value = cidr.family === "ipv4" || cidr.address.split(":").pop()!.includes(".") ? Number(last) : Number.parseInt(last || "0", 16);
  return value % 2 === 0 ? "even" : "odd";
}

function strings(value: unknown): string[] | undefined {
  return Array.isArray(value) ? value.map((item) => String(item).toLowerCase()) : undefined;
}

function portRange(item: unknown): [number, number] {
  if (typeof item === "number") return [item, item];
  const [low, high] = String(item).split("-").map(Number);
  return [low!, high ?? low!];
}

function matchersOf(rule: Json): Matchers {
  const match = (typeof rule.match === "object" && rule.match !== null ? rule.match : {}) as Json;
  const cidrs = (value: unknown) => Array.isArray(value) ? value.map((item) => parseCidr(String(item))).filter((cidr) => cidr !== undefined) : undefined;
  return {
    sources: cidrs(match.source_cidrs),
    parity: match.source_parity === "even" || match.source_parity === "odd" ? match.source_parity : undefined,
    destinations: cidrs(match.destination_cidrs),
    ports: Array.isArray(match.destination_ports) ? match.destination_ports.map(portRange) : undefined,
    serverNames: strings(match.server_names),
    authorities: strings(match.authorities),
    pathPrefixes: Array.isArray(match.path_prefixes) ? match.path_prefixes.map(String) : undefined,
    headers: Array.isArray(match.headers) ? match.headers.map((header: Json) => `${String(header.name).toLowerCase()}\0${String(header.value)}`) : undefined,
    values: Array.isArray(match.metadata) || Array.isArray(match.filter_state)
      ? [...(Array.isArray(match.metadata) ? match.metadata.map((item) => `metadata ${JSON.stringify(item)}`) : []),
        ...(Array.isArray(match.filter_state) ? match.filter_state.map((item) => `filter_state ${JSON.stringify(item)}`) : [])]
      : undefined,
  };
}

/** A name pattern covers another: equal, or `*.x` over a name or pattern under x. */
function nameCovers(outer: string, inner: string): boolean {
  if (outer === inner) return true;
  if (!outer.startsWith("*.")) return false;
  const suffix = outer.slice(1);
  const name = inner.startsWith("*.") ? inner.slice(1) : inner;
  return name.endsWith(suffix) && name.length > suffix.length;
}

/** Every item of `inner` is covered by some item of `outer`; an absent `outer` covers all. */
function listCovers<T>(outer: T[] | undefined, inner: T[] | undefined, covers: (o: T, i: T) => boolean): boolean {
  if (outer === undefined) return true;
  if (inner === undefined) return false;
  return inner.every((item) => outer.some((candidate) => covers(candidate, item)));
}

function parityCovers(outer: Matchers, inner: Matchers): boolean {
  if (outer.parity === undefined || inner.parity === outer.parity) return true;
  return inner.sources !== undefined && inner.sources.length > 0 && inner.sources.every((cidr) => hostParity(cidr) === outer.parity);
}

/** Every connection (or request) `inner` matches, `outer` matches too. */
function covers(outer: Matchers, inner: Matchers): boolean {
  return listCovers(outer.sources, inner.sources, (o, i) => cidrWithin(i, o)) && parityCovers(outer, inner)
    && listCovers(outer.destinations, inner.destinations, (o, i) => cidrWithin(i, o))
    && listCovers(outer.ports, inner.ports, (o, i) => i[0] >= o[0] && i[1] <= o[1])
    && listCovers(outer.serverNames, inner.serverNames, nameCovers) && listCovers(outer.authorities, inner.authorities, nameCovers)
    && listCovers(outer.pathPrefixes, inner.pathPrefixes, (o, i) => i.startsWith(o))
    // Every header, metadata or filter state condition of the outer rule, the inner one has too.
    && (outer.headers ?? []).every((header) => (inner.headers ?? []).includes(header))
    && (outer.values ?? []).every((value) => (inner.values ?? []).includes(value));
}

function isHttpOnly(matchers: Matchers): boolean {
  return matchers.authorities !== undefined || matchers.pathPrefixes !== undefined || matchers.headers !== undefined;
}

/** Why a rule can never match, if it cannot. */
function neverMatches(matchers: Matchers, kind: "network" | "http"): string | undefined {
  if (kind === "network" && isHttpOnly(matchers)) return "has HTTP matchers (authorities, path_prefixes, headers), which never match a TCP connection";
  const { parity, sources } = matchers;
  if (parity !== undefined && sources !== undefined && sources.length > 0 && sources.every((cidr) => hostParity(cidr) !== undefined && hostParity(cidr) !== parity)) {
    return `asks for ${parity} sources, but every address in its source_cidrs is ${parity === "even" ? "odd" : "even"}`;
  }
  return undefined;
}

/** Constrains nothing but, at most, parity. */
function onlyParity(matchers: Matchers): boolean {
  return Object.entries(matchers).every(([key, value]) => key === "parity" || value === undefined);
}

/**
 * Findings for a parsed JSON policy in a filter of `kind`: rules that never match, rules shadowed
 * by an earlier one, duplicate names, hashes over one cluster, and a `default` no connection reaches.
 */
export function lintPolicy(policy: Json, kind: "network" | "http"): LintFinding[] {
  const findings: LintFinding[] = [];
  const rules = Array.isArray(policy.rules) ? (policy.rules as Json[]) : [];
  const label = (i: number) => `rules[${i}]${typeof rules[i]!.name === "string" ? ` ('${rules[i]!.name}')` : ""}`;
  const live: { index: number; matchers: Matchers }[] = [];
  const names = new Map<string, number>();
  rules.forEach((rule, i) => {
    const matchers = matchersOf(rule);
    if (typeof rule.name === "string") {
      const first = names.get(rule.name);
      if (first !== undefined) findings.push({ path: `rules[${i}].name`, message: `duplicate rule name '${rule.name}' (also rules[${first}]): its counter and log lines cannot tell them apart` });
      else names.set(rule.name, i);
    }
    const action = (typeof rule.action === "object" && rule.action !== null ? rule.action : {}) as Json;
    if (Array.isArray(action.hash) && action.hash.length === 1) {
      findings.push({ path: `rules[${i}].action.hash`, message: "a hash over one cluster always picks it: write it as a cluster action" });
    }
    const never = neverMatches(matchers, kind);
    if (never !== undefined) {
      findings.push({ path: `rules[${i}]`, message: `${label(i)} can never match: it ${never}` });
      return;
    }
    const shadow = live.find((earlier) => covers(earlier.matchers, matchers));
    if (shadow !== undefined) {
      findings.push({ path: `rules[${i}]`, message: `${label(i)} is never reached: ${label(shadow.index)} before it matches everything it matches` });
      return;
    }
    live.push({ index: i, matchers });
  });
  if (policy.default !== undefined) {
    const catchAll = live.find(({ matchers }) => covers(matchers, matchersOf({})));
    const parities = new Set(live.filter(({ matchers }) => onlyParity(matchers)).map(({ matchers }) => matchers.parity));
    if (catchAll !== undefined) {
      findings.push({ path: "default", message: `never reached: ${label(catchAll.index)} matches every ${kind === "http" ? "request" : "connection"}` });
    } else if (parities.has("even") && parities.has("odd")) {
      findings.push({ path: "default", message: "never reached: the even and odd source_parity rules together match every source" });
    }
  }
  return findings;
}
