// The routing decision: the first rule (in policy order) whose matchers all hold wins, else the
// default action. Pure: no host calls, so it is the same in Envoy, in the local runner and in
// tests. Only candidate rules are checked: those of the address index (source or destination,
// whichever leaves fewer) that contain the address, and those that do not constrain it.
import { Address } from "./ip";
import { ActionKind, Facts, ValueMatch } from "./model";
import { CompiledPolicy, Matcher } from "./compiled";

export enum Outcome {
  Route,
  Reject,
  Passthrough,
  /** The action could not be applied (missing address, placeholder without value): nothing is set. */
  Error,
}

/** The rule index of the default action. */
export const DEFAULT_RULE = -1;

/** A decision, written in place by decide (one per router, reused). */
export class Decision {
  outcome: Outcome = Outcome.Route;
  /** The matching rule's index, or DEFAULT_RULE. */
  rule: i32 = DEFAULT_RULE;
  /** The cluster's slot in CompiledPolicy.clusters, or -1 for a name made per connection. */
  cluster: i32 = -1;
  /** The cluster name when `cluster` is -1 and the outcome is Route. */
  dynamicCluster: string = "";
  /** Why, for Reject and Error. */
  reason: string = "";
  /** The cluster is an ORIGINAL_DST one: the destination goes with it (filter state original_dst_address). */
  originalDestination: bool = false;
}

export function decide(policy: CompiledPolicy, facts: Facts, out: Decision): void {
  if (policy.ruleCount == 0) {
    out.rule = DEFAULT_RULE;
    apply(policy, policy.defaultAction, facts, out);
    return;
  }
  const source = policy.source;
  const destination = policy.destination;
  source.lookup(facts.source);
  destination.lookup(facts.destination);
  const byDestination = destination.candidates < source.candidates;
  const driver = byDestination ? destination : source;
  const known: u32 = byDestination ? Matcher.Destination : Matcher.Source;
  let best = policy.ruleCount;
  // The chain's lists, then the wildcard rules: one loop, so that matches() is inlined once.
  for (let c = 0; c <= driver.chainLength; c++) {
    let list = driver.wildcard;
    let from = 0;
    let to = list.length;
    if (c < driver.chainLength) {
      const node = unchecked(driver.chain[c]);
      list = driver.rules;
      from = unchecked(driver.listStart[node]);
      to = unchecked(driver.listStart[node + 1]);
    }
    best = firstMatch(policy, facts, list, from, to, best, known);
  }
  if (best < policy.ruleCount) {
    out.rule = best;
    apply(policy, unchecked(policy.ruleAction[best]), facts, out);
  } else {
    out.rule = DEFAULT_RULE;
    apply(policy, policy.defaultAction, facts, out);
  }
}

/**
 * The first rule of list[from, to) (ascending) that matches, if it comes before `best`; else
 * `best`. Scanning every candidate list this way yields the first matching rule overall.
 */
@inline function firstMatch(policy: CompiledPolicy, facts: Facts, list: StaticArray<i32>, from: i32, to: i32, best: i32, known: u32): i32 {
  for (let i = from; i < to; i++) {
    const rule = unchecked(list[i]);
    if (rule >= best) break;
    if (matches(policy, facts, rule, known)) return rule;
  }
  return best;
}

/** Whether every matcher of `rule` holds; `known` are the ones the candidate list already proved. */
@inline export function matches(policy: CompiledPolicy, facts: Facts, rule: i32, known: u32): bool {
  const flags = unchecked(policy.flags[rule]) & ~known;
  if (flags == 0) return true;
  const source = facts.source;
  if ((flags & Matcher.Source) != 0 && !policy.source.contains(rule)) return false;
  if ((flags & (Matcher.Even | Matcher.Odd)) != 0) {
    if (!source.valid || ((source.lastByte & 1) == 1) != ((flags & Matcher.Odd) != 0)) return false;
  }
  if ((flags & Matcher.Destination) != 0 && !policy.destination.contains(rule)) return false;
  if ((flags & Matcher.Ports) != 0 && !portMatches(policy, facts.destination, rule)) return false;
  if ((flags & Matcher.ServerName) != 0
    && !nameMatches(policy.names, policy.nameStart[rule], policy.nameStart[rule + 1], facts.serverName)) return false;
  if ((flags & Matcher.Value) != 0 && !valuesMatch(policy, facts, rule)) return false;
  return (flags & Matcher.Request) == 0 || requestMatches(policy, facts, rule);
}

/** Matchers in the order matches() tries them; parity is one matcher of two bits. */
const MATCHER_ORDER: u32[] = [Matcher.Source, Matcher.Even | Matcher.Odd, Matcher.Destination, Matcher.Ports, Matcher.ServerName,
  Matcher.Value, Matcher.Request];

/**
 * The first matcher of `rule` that does not hold (its Matcher bits), or 0 when all hold: each
 * matcher tried alone, the others taken as proven. For explanations; decide must have looked up
 * these facts in the address indexes.
 */
export function failedMatcher(policy: CompiledPolicy, facts: Facts, rule: i32): u32 {
  for (let i = 0; i < MATCHER_ORDER.length; i++) {
    const matcher = MATCHER_ORDER[i];
    if (!matches(policy, facts, rule, ~matcher)) return matcher & unchecked(policy.flags[rule]);
  }
  return 0;
}

/** Every metadata and filter state matcher of `rule` holds; an absent value matches none. */
function valuesMatch(policy: CompiledPolicy, facts: Facts, rule: i32): bool {
  for (let m = policy.valueStart[rule]; m < policy.valueStart[rule + 1]; m++) {
    const index = policy.valueIndex[m];
    const length = facts.valueLengths[index];
    if (length < 0) return false;
    const bytes = facts.valueBytes[index];
    const prefix = policy.valueKind[m] == ValueMatch.Prefix;
    let found = false;
    for (let o = policy.operandStart[m]; o < policy.operandStart[m + 1] && !found; o++) {
      const from = policy.operandOffset[o];
      const size = policy.operandOffset[o + 1] - from;
      found = (prefix ? length >= size : length == size) && bytesEqual(bytes, policy.operandBytes, from, size);
    }
    if (!found) return false;
  }
  return true;
}

/** Whether value[0, size) is operands[from, from + size). */
function bytesEqual(value: StaticArray<u8>, operands: StaticArray<u8>, from: i32, size: i32): bool {
  for (let i = 0; i < size; i++) if (value[i] != operands[from + i]) return false;
  return true;
}

function portMatches(policy: CompiledPolicy, destination: Address, rule: i32): bool {
  const port = destination.port;
  if (!destination.valid || port < 0) return false;
  for (let i = policy.portStart[rule]; i < policy.portStart[rule + 1]; i++) {
    if (port >= policy.portLow[i] && port <= policy.portHigh[i]) return true;
  }
  return false;
}

/** HTTP matchers never match a plain TCP connection. */
function requestMatches(policy: CompiledPolicy, facts: Facts, rule: i32): bool {
  if (!facts.isRequest) return false;
  const authorityFrom = policy.authorityStart[rule];
  const authorityTo = policy.authorityStart[rule + 1];
  if (authorityTo > authorityFrom && !nameMatches(policy.authorities, authorityFrom, authorityTo, facts.authority)) return false;
  const prefixFrom = policy.prefixStart[rule];
  const prefixTo = policy.prefixStart[rule + 1];
  if (prefixTo > prefixFrom) {
    let found = false;
    for (let i = prefixFrom; i < prefixTo && !found; i++) found = facts.path.startsWith(policy.prefixes[i]);
    if (!found) return false;
  }
  for (let i = policy.headerStart[rule]; i < policy.headerStart[rule + 1]; i++) {
    if (facts.headerValues[policy.headerIndex[i]] != policy.headerValue[i]) return false;
  }
  return true;
}

/** Exact names, or `.suffix` for any name under the suffix. */
function nameMatches(patterns: string[], from: i32, to: i32, name: string): bool {
  if (name.length == 0) return false;
  for (let i = from; i < to; i++) {
    const pattern = patterns[i];
    if (pattern.startsWith(".") ? name.length > pattern.length && name.endsWith(pattern) : name == pattern) return true;
  }
  return false;
}

/** A stable 32-bit hash of an address (murmur3's finalizer over both halves): same source, same cluster. */
export function hashAddress(address: Address): u32 {
  let h = <u32>(address.hi ^ (address.hi >>> 32)) * 0x9e3779b1 ^ <u32>(address.lo ^ (address.lo >>> 32));
  h ^= h >>> 16;
  h *= 0x85ebca6b;
  h ^= h >>> 13;
  h *= 0xc2b2ae35;
  h ^= h >>> 16;
  return h;
}

function fail(out: Decision, reason: string): void {
  out.outcome = Outcome.Error;
  out.reason = reason;
}

function apply(policy: CompiledPolicy, action: i32, facts: Facts, out: Decision): void {
  const kind = unchecked(policy.actionKind[action]);
  out.cluster = -1;
  out.originalDestination = kind == ActionKind.OriginalDst;
  if (out.originalDestination && !facts.destination.valid) return fail(out, "bad_address: original_dst needs the destination address");
  if (kind == ActionKind.Reject) {
    out.outcome = Outcome.Reject;
    out.reason = "rejected by policy";
    return;
  }
  if (kind == ActionKind.Passthrough) {
    out.outcome = Outcome.Passthrough;
    return;
  }
  const source = facts.source;
  let target = unchecked(policy.targetStart[action]);
  const targets = unchecked(policy.targetStart[action + 1]) - target;
  if (kind == ActionKind.Reference) {
    // Last octet even → router 1, odd → router 2; Istio names carry the router's service port:
    // 8081 for destination port 80, else 8080 (443 assumed when the destination is unknown).
    if (!source.valid) return fail(out, "bad_address: source address missing or unparsable");
    target += <i32>(source.lastByte & 1);
    if (unchecked(policy.actionIstio[action]) && facts.destination.valid && facts.destination.port == 80) target += 2;
  } else if (targets > 1) {
    if (!source.valid) return fail(out, "bad_address: hash needs a source address");
    let point = hashAddress(source) % unchecked(policy.totalWeight[action]);
    while (point >= unchecked(policy.targetWeight[target])) point -= unchecked(policy.targetWeight[target++]);
  }
  out.outcome = Outcome.Route;
  out.cluster = unchecked(policy.targetSlot[target]);
  if (out.cluster >= 0) return;
  out.dynamicCluster = policy.templates[unchecked(policy.targetTemplate[target])].render(facts);
  if (out.dynamicCluster.length == 0) fail(out, "bad_address: no destination port for {dst_port}");
}
