// What the policy is made of besides its compiled rules (compiled.ts): actions, cluster name
// templates, settings, and the facts a decision reads. Built once per configuration (config.ts).
import { msg } from "../messages";
import { formatNumber } from "../sdk/format";
import { Address } from "./ip";

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

  /** The name for this connection, or "" when a placeholder has no value. */
  render(facts: Facts): string {
    let out = "";
    for (let i = 0; i < this.pieces.length; i++) {
      if (this.placeholders[i] == Placeholder.None) {
        out += this.pieces[i];
      } else {
        const destination = facts.destination;
        if (!destination.valid || destination.port < 0) return "";
        out += formatNumber(destination.port);
      }
    }
    return out;
  }
}

/** How a metadata or filter state matcher compares: the value is one of the operands, or starts with one. */
export enum ValueMatch {
  OneOf,
  Prefix,
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
  /** Only connections to these destination ports, [portLow[i], portHigh[i]], get a header (the client must speak first). */
  portLow: i32[] = new Array<i32>();
  portHigh: i32[] = new Array<i32>();
  /** v2 TLVs: the SNI as PP2_TYPE_AUTHORITY, the rule name as Wasmerang's 0xE0. */
  sendServerName: bool = false;
  sendRule: bool = false;
}

/** What the policy says besides its rules. */
export class PolicySettings {
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
  /**
   * Values of PolicySettings.valuePaths, in order: valueLengths[i] bytes long (-1 when the host
   * has none), of which valueBytes[i] holds the first CompiledPolicy.valueCapacity[i].
   */
  valueBytes: StaticArray<u8>[] = new Array<StaticArray<u8>>();
  valueLengths: StaticArray<i32> = new StaticArray<i32>(0);
}
