// The parsed, immutable policy. Built once per configuration (config.ts); the data path only reads it.
import { msg } from "../messages";
import { Address, Cidr } from "./ip";

export enum ActionKind {
  /** Set one cluster (possibly chosen among several by a hash of the source IP). */
  Route,
  /** Close the connection. */
  Reject,
  /** Leave tcp_proxy's own cluster. */
  Passthrough,
  /** The reference behaviour: source last octet even → egress-router1, odd → egress-router2. */
  Reference,
  /** Straight to the original destination through an ORIGINAL_DST cluster (rules with destination_cidrs only). */
  OriginalDst,
}

export enum Placeholder {
  None,
  DestinationPort,
}

/** A cluster name, possibly with `{dst_port}` in it, split into pieces at configure time. */
export class ClusterTemplate {
  constructor(public readonly pieces: string[], public readonly placeholders: Placeholder[]) {}

  get isStatic(): bool {
    return this.pieces.length == 1 && this.placeholders[0] == Placeholder.None;
  }

  get usesDestination(): bool {
    return this.placeholders.includes(Placeholder.DestinationPort);
  }

  /** The name for this connection, or "" when a placeholder has no value. */
  render(facts: Facts): string {
    let out = "";
    for (let i = 0; i < this.pieces.length; i++) {
      if (this.placeholders[i] == Placeholder.None) {
        out += this.pieces[i];
      } else {
        const destination = facts.destination;
        if (!destination.valid || destination.port < 0) return "";
        out += destination.port.toString();
      }
    }
    return out;
  }
}

export class WeightedCluster {
  constructor(public readonly cluster: ClusterTemplate, public readonly weight: u32) {}
}

export class RuleAction {
  kind: ActionKind = ActionKind.Passthrough;
  /** One entry for a plain route; several for a hash spread. */
  clusters: WeightedCluster[] = new Array<WeightedCluster>();
  totalWeight: u32 = 0;
  /** Reference action: Istio's `outbound|PORT||egress-routerN.default.svc.cluster.local` names. */
  istio: bool = false;
}

export enum Parity {
  Any,
  Even,
  Odd,
}

/** How a metadata or filter state matcher compares: the value is one of the operands, or starts with one. */
export enum ValueMatch {
  OneOf,
  Prefix,
}

/** One metadata or filter state matcher: the value at Policy.valuePaths[index], compared as `kind` with `operands`. */
export class ValueMatcher {
  constructor(public readonly index: i32, public readonly kind: ValueMatch, public readonly operands: string[]) {}
}

export class PortRange {
  constructor(public readonly low: i32, public readonly high: i32) {}
}

// A rule's lists are these shared empty ones (never written) unless the rule has such a matcher,
// when the reader gives it a list of its own: a 10,000-rule policy would otherwise hold ten empty
// lists per rule at the configure peak, which sets the VM's memory for good.
// Empty lists in filter/ are `new Array<T>()` / `new StaticArray<T>(0)`, never `[]`: asc gives each
// `[]` literal a static buffer of its own in the data section (about 15 bytes each, 1.4 KB in all).
export const NO_CIDRS: Cidr[] = new Array<Cidr>();
export const NO_PORTS: PortRange[] = new Array<PortRange>();
export const NO_NAMES: string[] = new Array<string>();
export const NO_INDEXES: i32[] = new Array<i32>();
export const NO_VALUE_MATCHERS: ValueMatcher[] = new Array<ValueMatcher>();

export class Rule {
  name: string = "";
  sourceCidrs: Cidr[] = NO_CIDRS;
  sourceParity: Parity = Parity.Any;
  destinationCidrs: Cidr[] = NO_CIDRS;
  destinationPorts: PortRange[] = NO_PORTS;
  /** Exact names, or `*.suffix` (stored as `.suffix`) for any name under that suffix. */
  serverNames: string[] = NO_NAMES;
  /** HTTP only: `:authority` without port, exact or `.suffix` as serverNames. */
  authorities: string[] = NO_NAMES;
  /** HTTP only: `:path` prefixes. */
  pathPrefixes: string[] = NO_NAMES;
  /** HTTP only: indexes into Policy.headerNames, with the exact value each must have. */
  headerIndexes: i32[] = NO_INDEXES;
  headerValues: string[] = NO_NAMES;
  /** Metadata and filter state matchers. */
  valueMatchers: ValueMatcher[] = NO_VALUE_MATCHERS;
  action: RuleAction = new RuleAction();

  get isHttpOnly(): bool {
    return this.authorities.length > 0 || this.pathPrefixes.length > 0 || this.headerIndexes.length > 0;
  }
}

/** How the HTTP filter hands its choice to the route (route.cluster_header) and answers rejects. */
export class HttpSettings {
  clusterHeader: string = msg("x-wasmerang-cluster");
  rejectStatus: u32 = 403;
  rejectBody: string = msg("request rejected by policy\n");
}

/** The filter's own PROXY protocol header, for upstreams whose cluster config cannot add one. */
export class ProxyHeaderSettings {
  /** 0: off; 1 or 2: the PROXY protocol version. */
  version: i32 = 0;
  /** Only connections to these destination ports get a header (the client must speak first). */
  ports: PortRange[] = new Array<PortRange>();
  /** v2 TLVs: the SNI as PP2_TYPE_AUTHORITY, the rule name as Wasmerang's 0xE0. */
  sendServerName: bool = false;
  sendRule: bool = false;
}

export class Policy {
  rules: Rule[] = new Array<Rule>();
  defaultAction: RuleAction = new RuleAction();
  /** The least severe level the filter logs at; the host's own level applies on top. */
  logLevel: i32 = 0;
  /** Each decision as filter state wasm.wasmerang.{rule,cluster,outcome}, for access logs. */
  recordDecision: bool = false;
  needsDestination: bool = false;
  needsServerName: bool = false;
  http: HttpSettings = new HttpSettings();
  proxyHeader: ProxyHeaderSettings = new ProxyHeaderSettings();
  /** Request headers the HTTP matchers read, lower case. */
  headerNames: string[] = new Array<string>();
  /**
   * Property paths (segments joined by NUL) the metadata and filter state matchers read:
   * `metadata\0filter_metadata\0NAMESPACE\0KEY`, `filter_state\0KEY`.
   */
  valuePaths: string[] = new Array<string>();
}

/** What the filter knows about a connection (or request) when it decides; reused, never rebuilt. */
export class Facts {
  readonly source: Address = new Address();
  readonly destination: Address = new Address();
  /** Lower case; "" when there is none or the policy does not need it. */
  serverName: string = "";
  /** HTTP only: false on a TCP connection, where HTTP matchers never match. */
  isRequest: bool = false;
  authority: string = "";
  path: string = "";
  /** Values of Policy.headerNames, in order ("" when absent). */
  headerValues: string[] = new Array<string>();
  /** Values of Policy.valuePaths, in order (null when the host has none). */
  values: Array<string | null> = new Array<string | null>();
}
