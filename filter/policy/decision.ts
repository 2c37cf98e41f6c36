// The routing decision: first matching rule wins, else the default action. Pure: no host calls,
// so it is the same in Envoy, in the local runner and in tests.
import { Cidr, Ip } from "./ip";
import { ActionKind, ConnectionFacts, Parity, Policy, RequestFacts, Rule, RuleAction } from "./model";

export enum Outcome {
  Route,
  Reject,
  Passthrough,
  /** The action could not be applied (missing address, placeholder without value): nothing is set. */
  Error,
}

export class Decision {
  constructor(
    public readonly outcome: Outcome,
    public readonly cluster: string,
    /** The matching rule's name, "" for an unnamed rule, "default" when no rule matched. */
    public readonly rule: string,
    public readonly reason: string,
  ) {}
}

export const DEFAULT_RULE = "default";

export function decide(policy: Policy, facts: ConnectionFacts): Decision {
  for (let i = 0; i < policy.rules.length; i++) {
    const rule = policy.rules[i];
    if (ruleMatches(rule, facts)) return apply(rule.action, facts, rule.name);
  }
  return apply(policy.defaultAction, facts, DEFAULT_RULE);
}

function anyContains(cidrs: Cidr[], ip: Ip): bool {
  for (let i = 0; i < cidrs.length; i++) if (cidrs[i].contains(ip)) return true;
  return false;
}

function ruleMatches(rule: Rule, facts: ConnectionFacts): bool {
  const source = facts.source;
  if (rule.sourceCidrs.length > 0 && (source == null || !anyContains(rule.sourceCidrs, source.ip))) return false;
  if (rule.sourceParity != Parity.Any) {
    if (source == null) return false;
    const odd = (source.ip.lastByte & 1) == 1;
    if (odd != (rule.sourceParity == Parity.Odd)) return false;
  }
  const destination = facts.destination;
  if (rule.destinationCidrs.length > 0 && (destination == null || !anyContains(rule.destinationCidrs, destination.ip))) return false;
  if (rule.destinationPorts.length > 0) {
    if (destination == null || destination.port < 0) return false;
    let inRange = false;
    for (let i = 0; i < rule.destinationPorts.length && !inRange; i++) {
      const range = rule.destinationPorts[i];
      inRange = destination.port >= range.low && destination.port <= range.high;
    }
    if (!inRange) return false;
  }
  if (rule.serverNames.length > 0 && !serverNameMatches(rule.serverNames, facts.serverName)) return false;
  if (rule.isHttpOnly) return requestMatches(rule, facts.request);
  return true;
}

/** HTTP matchers never match a plain TCP connection (no request). */
function requestMatches(rule: Rule, request: RequestFacts | null): bool {
  if (request == null) return false;
  if (rule.authorities.length > 0 && !serverNameMatches(rule.authorities, request.authority)) return false;
  if (rule.pathPrefixes.length > 0) {
    let found = false;
    for (let i = 0; i < rule.pathPrefixes.length && !found; i++) found = request.path.startsWith(rule.pathPrefixes[i]);
    if (!found) return false;
  }
  for (let i = 0; i < rule.headerIndexes.length; i++) {
    if (request.headerValues[rule.headerIndexes[i]] != rule.headerValues[i]) return false;
  }
  return true;
}

function serverNameMatches(patterns: string[], name: string): bool {
  if (name.length == 0) return false;
  for (let i = 0; i < patterns.length; i++) {
    const pattern = patterns[i];
    if (pattern.startsWith(".") ? name.length > pattern.length && name.endsWith(pattern) : name == pattern) return true;
  }
  return false;
}

/** A stable 32-bit hash of an address (murmur3's finalizer over both halves): same source, same cluster. */
export function hashAddress(ip: Ip): u32 {
  let h = <u32>(ip.hi ^ (ip.hi >>> 32)) * 0x9e3779b1 ^ <u32>(ip.lo ^ (ip.lo >>> 32));
  h ^= h >>> 16;
  h *= 0x85ebca6b;
  h ^= h >>> 13;
  h *= 0xc2b2ae35;
  h ^= h >>> 16;
  return h;
}

function apply(action: RuleAction, facts: ConnectionFacts, rule: string): Decision {
  if (action.kind == ActionKind.Reject) return new Decision(Outcome.Reject, "", rule, "rejected by policy");
  if (action.kind == ActionKind.Passthrough) return new Decision(Outcome.Passthrough, "", rule, "");
  const source = facts.source;
  if (action.kind == ActionKind.Reference) {
    if (source == null) return new Decision(Outcome.Error, "", rule, "bad_address: source address missing or unparsable");
    return new Decision(Outcome.Route, referenceCluster(source.ip, facts, action.istio), rule, "");
  }
  let index = 0;
  if (action.clusters.length > 1) {
    if (source == null) return new Decision(Outcome.Error, "", rule, "bad_address: hash needs a source address");
    let point = hashAddress(source.ip) % action.totalWeight;
    while (point >= action.clusters[index].weight) point -= action.clusters[index++].weight;
  }
  const cluster = action.clusters[index].cluster.render(facts);
  if (cluster.length == 0) return new Decision(Outcome.Error, "", rule, "bad_address: no destination port for {dst_port}");
  return new Decision(Outcome.Route, cluster, rule, "");
}

/**
 * Reference routing: last octet even → router 1, odd → router 2. Istio names carry the router's
 * port: 8081 for destination port 80, else 8080 (443 assumed when the destination is unknown).
 */
function referenceCluster(source: Ip, facts: ConnectionFacts, istio: bool): string {
  const router = (source.lastByte & 1) == 0 ? "egress-router1" : "egress-router2";
  if (!istio) return router;
  const destination = facts.destination;
  const port = destination == null || destination.port < 0 ? 443 : destination.port;
  const routerPort = port == 80 ? "8081" : "8080";
  return "outbound|" + routerPort + "||" + router + ".default.svc.cluster.local";
}
