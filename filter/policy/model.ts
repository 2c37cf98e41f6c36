// The parsed, immutable policy. Built once per configuration (config.ts); the data path only reads it.
import { Cidr, SocketAddress } from "./ip";

export enum ActionKind {
  /** Set one cluster (possibly chosen among several by a hash of the source IP). */
  Route,
  /** Close the connection. */
  Reject,
  /** Leave tcp_proxy's own cluster. */
  Passthrough,
  /** The reference behaviour: source last octet even → egress-router1, odd → egress-router2. */
  Reference,
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
  render(facts: ConnectionFacts): string {
    if (this.isStatic) return this.pieces[0];
    let out = "";
    for (let i = 0; i < this.pieces.length; i++) {
      if (this.placeholders[i] == Placeholder.None) {
        out += this.pieces[i];
      } else {
        const destination = facts.destination;
        if (destination == null || destination.port < 0) return "";
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
  clusters: WeightedCluster[] = [];
  totalWeight: u32 = 0;
  /** Reference action: Istio's `outbound|PORT||egress-routerN.default.svc.cluster.local` names. */
  istio: bool = false;
}

export enum Parity {
  Any,
  Even,
  Odd,
}

export class PortRange {
  constructor(public readonly low: i32, public readonly high: i32) {}
}

export class Rule {
  name: string = "";
  sourceCidrs: Cidr[] = [];
  sourceParity: Parity = Parity.Any;
  destinationCidrs: Cidr[] = [];
  destinationPorts: PortRange[] = [];
  /** Exact names, or `*.suffix` (stored as `.suffix`) for any name under that suffix. */
  serverNames: string[] = [];
  /** HTTP only: `:authority` without port, exact or `.suffix` as serverNames. */
  authorities: string[] = [];
  /** HTTP only: `:path` prefixes. */
  pathPrefixes: string[] = [];
  /** HTTP only: indexes into Policy.headerNames, with the exact value each must have. */
  headerIndexes: i32[] = [];
  headerValues: string[] = [];
  action: RuleAction = new RuleAction();

  get isHttpOnly(): bool {
    return this.authorities.length > 0 || this.pathPrefixes.length > 0 || this.headerIndexes.length > 0;
  }
}

/** How the HTTP filter hands its choice to the route (route.cluster_header) and answers rejects. */
export class HttpSettings {
  clusterHeader: string = "x-wasmerang-cluster";
  rejectStatus: u32 = 403;
  rejectBody: string = "request rejected by policy\n";
}

/** The filter's own PROXY protocol header, for upstreams whose cluster config cannot add one. */
export class ProxyHeaderSettings {
  /** 0: off; 1 or 2: the PROXY protocol version. */
  version: i32 = 0;
  /** Only connections to these destination ports get a header (the client must speak first). */
  ports: PortRange[] = [];
  /** v2 TLVs: the SNI as PP2_TYPE_AUTHORITY, the rule name as Wasmerang's 0xE0. */
  sendServerName: bool = false;
  sendRule: bool = false;
}

export class Policy {
  rules: Rule[] = [];
  defaultAction: RuleAction = new RuleAction();
  logLevel: i32 = 2;
  needsDestination: bool = false;
  needsServerName: bool = false;
  http: HttpSettings = new HttpSettings();
  proxyHeader: ProxyHeaderSettings = new ProxyHeaderSettings();
  /** Request headers the HTTP matchers read, lower case. */
  headerNames: string[] = [];
}

/** The request, for HTTP matchers; null on a TCP connection. */
export class RequestFacts {
  constructor(
    public readonly authority: string,
    public readonly path: string,
    /** Values of Policy.headerNames, in order ("" when absent). */
    public readonly headerValues: string[],
  ) {}
}

/** What the filter knows about a connection when it decides. */
export class ConnectionFacts {
  constructor(
    public readonly source: SocketAddress | null,
    public readonly destination: SocketAddress | null,
    public readonly serverName: string,
    public readonly request: RequestFacts | null = null,
  ) {}
}
