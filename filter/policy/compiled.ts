// The policy compiled at configure time into flat arrays: CIDRs into address indexes, every other
// matcher and action into per-rule ranges of shared arrays. The data path reads only this. Flat
// arrays, not an object per rule, keep the live heap a few dozen objects whatever the policy's
// size, so the (rare) collection that marks it stays cheap. The reader (config.ts) fills it
// through a PolicyBuilder, rule by rule, as it reads the configuration.
//
// Empty lists in filter/ are `new Array<T>()` / `new StaticArray<T>(0)`, never `[]`: asc gives each
// `[]` literal a static buffer of its own in the data section (about 15 bytes each, 1.4 KB in all).
import { msg } from "../messages";
import { AddressIndex, AddressIndexBuilder } from "./address-index";
import { Cidr } from "./ip";
import { ActionKind, ClusterTemplate, PolicySettings, ValueMatch } from "./model";

/** The matchers a rule uses, as bits of CompiledPolicy.flags. */
export const enum Matcher {
  Source = 1,
  Destination = 2,
  Ports = 4,
  ServerName = 8,
  Even = 16,
  Odd = 32,
  /** Authority, path prefix or header: HTTP requests only. */
  Request = 64,
  /** Dynamic metadata or filter state. */
  Value = 128,
}

const REFERENCE_ROUTERS = [msg("egress-router1"), msg("egress-router2")];

/** Istio's name for a reference router service port: `outbound|PORT||egress-routerN.default.svc.cluster.local`. */
function istioName(router: string, port: string): string {
  return msg("outbound|") + port + "||" + router + msg(".default.svc.cluster.local");
}

// What a policy's arrays are until PolicyBuilder.finish sets them: one shared empty array of each
// type rather than an allocation per field.
const NO_U32 = new StaticArray<u32>(0);
const NO_I32 = new StaticArray<i32>(0);
const NO_BOOL = new StaticArray<bool>(0);
const NO_U8 = new StaticArray<u8>(0);

export class CompiledPolicy {
  ruleCount: i32 = 0;
  flags: StaticArray<u32> = NO_U32;
  ruleAction: StaticArray<i32> = NO_I32;
  /** Each rule's name, "" when unnamed. */
  ruleNames: string[] = new Array<string>();
  source: AddressIndex = new AddressIndex();
  destination: AddressIndex = new AddressIndex();
  /** Rule r's destination ports are [portLow[i], portHigh[i]] for i in [portStart[r], portStart[r + 1]). */
  portStart: StaticArray<i32> = NO_I32;
  portLow: StaticArray<i32> = NO_I32;
  portHigh: StaticArray<i32> = NO_I32;
  /** Server name patterns, the same way; `.suffix` for `*.suffix`. */
  nameStart: StaticArray<i32> = NO_I32;
  names: string[] = new Array<string>();
  authorityStart: StaticArray<i32> = NO_I32;
  authorities: string[] = new Array<string>();
  prefixStart: StaticArray<i32> = NO_I32;
  prefixes: string[] = new Array<string>();
  /** Header matchers: an index into PolicySettings.headerNames and the exact value. */
  headerStart: StaticArray<i32> = NO_I32;
  headerIndex: StaticArray<i32> = NO_I32;
  headerValue: string[] = new Array<string>();
  /**
   * Value matchers: rule r's are m in [valueStart[r], valueStart[r + 1]), each reading value
   * valueIndex[m] of the facts as valueKind[m] with operands [operandStart[m], operandStart[m + 1]).
   * Operand o is the UTF-8 bytes operandBytes[operandOffset[o], operandOffset[o + 1]): values are
   * compared as the host's bytes, without making a string of each.
   */
  valueStart: StaticArray<i32> = NO_I32;
  valueIndex: StaticArray<i32> = NO_I32;
  valueKind: StaticArray<i32> = NO_I32;
  operandStart: StaticArray<i32> = NO_I32;
  operandOffset: StaticArray<i32> = NO_I32;
  operandBytes: StaticArray<u8> = NO_U8;
  /** Per value path: the longest operand compared with it, in bytes (what of a value is ever read). */
  valueCapacity: StaticArray<i32> = NO_I32;

  actionKind: StaticArray<i32> = NO_I32;
  actionIstio: StaticArray<bool> = NO_BOOL;
  /** Action a's targets are [targetStart[a], targetStart[a + 1]); a reference action has one per router (and port). */
  targetStart: StaticArray<i32> = NO_I32;
  totalWeight: StaticArray<u32> = NO_U32;
  targetWeight: StaticArray<u32> = NO_U32;
  /** The target's cluster slot, or -1 when its name has a placeholder (then targetTemplate). */
  targetSlot: StaticArray<i32> = NO_I32;
  targetTemplate: StaticArray<i32> = NO_I32;
  templates: ClusterTemplate[] = new Array<ClusterTemplate>();
  defaultAction: i32 = 0;
  /** Static cluster names, by slot. */
  clusters: string[] = new Array<string>();

  readonly settings: PolicySettings = new PolicySettings();

  ruleName(rule: i32): string {
    return rule < 0 ? "default" : this.ruleNames[rule];
  }
}

/**
 * Builds a CompiledPolicy from the reader's calls: per rule, beginRule, its matchers, endRule;
 * actions with beginAction, their targets, endAction. Rules come in policy order.
 */
export class PolicyBuilder {
  readonly out: CompiledPolicy = new CompiledPolicy();
  private readonly sources: AddressIndexBuilder = new AddressIndexBuilder();
  private readonly destinations: AddressIndexBuilder = new AddressIndexBuilder();
  /** The matchers of the rule being read. */
  ruleFlags: u32 = 0;
  private readonly flags: u32[] = new Array<u32>();
  private readonly ruleActions: i32[] = new Array<i32>();
  private readonly portStart: i32[] = [0];
  private readonly portLow: i32[] = new Array<i32>();
  private readonly portHigh: i32[] = new Array<i32>();
  private readonly nameStart: i32[] = [0];
  private readonly authorityStart: i32[] = [0];
  private readonly prefixStart: i32[] = [0];
  private readonly headerStart: i32[] = [0];
  private readonly headerIndex: i32[] = new Array<i32>();
  private readonly valueStart: i32[] = [0];
  private readonly valueIndex: i32[] = new Array<i32>();
  private readonly valueKind: i32[] = new Array<i32>();
  private readonly operandStart: i32[] = [0];
  private readonly operandOffset: i32[] = [0];
  private readonly operandBytes: u8[] = new Array<u8>();
  private readonly capacity: i32[] = new Array<i32>();
  private readonly slots: Map<string, i32> = new Map();
  private readonly kinds: i32[] = new Array<i32>();
  private readonly istio: bool[] = new Array<bool>();
  private readonly targetStart: i32[] = [0];
  private readonly totals: u32[] = new Array<u32>();
  private readonly weights: u32[] = new Array<u32>();
  private readonly targetSlots: i32[] = new Array<i32>();
  private readonly targetTemplates: i32[] = new Array<i32>();
  private total: u32 = 0;

  /** The index the next rule gets. */
  get rule(): i32 {
    return this.flags.length;
  }

  beginRule(): void {
    this.ruleFlags = 0;
  }

  /** One of the rule's source CIDRs (matcher Source) or destination CIDRs (Destination). */
  cidr(matcher: Matcher, cidr: Cidr): void {
    (matcher == Matcher.Source ? this.sources : this.destinations).add(this.rule, cidr);
    this.ruleFlags |= matcher;
  }

  /** The source address's last byte must be odd, or even. */
  sourceParity(odd: bool): void {
    this.ruleFlags |= odd ? Matcher.Odd : Matcher.Even;
  }

  port(low: i32, high: i32): void {
    this.portLow.push(low);
    this.portHigh.push(high);
    this.ruleFlags |= Matcher.Ports;
  }

  /** An exact server name, or `.suffix` for `*.suffix`. */
  serverName(pattern: string): void {
    this.out.names.push(pattern);
    this.ruleFlags |= Matcher.ServerName;
  }

  authority(pattern: string): void {
    this.out.authorities.push(pattern);
    this.ruleFlags |= Matcher.Request;
  }

  pathPrefix(prefix: string): void {
    this.out.prefixes.push(prefix);
    this.ruleFlags |= Matcher.Request;
  }

  header(index: i32, value: string): void {
    this.headerIndex.push(index);
    this.out.headerValue.push(value);
    this.ruleFlags |= Matcher.Request;
  }

  /** A matcher on value path `index` (PolicySettings.valuePaths). */
  valueMatcher(index: i32, kind: ValueMatch, operands: string[]): void {
    this.valueIndex.push(index);
    this.valueKind.push(kind);
    while (this.capacity.length <= index) this.capacity.push(0);
    for (let i = 0; i < operands.length; i++) {
      const bytes = Uint8Array.wrap(String.UTF8.encode(operands[i]));
      for (let k = 0; k < bytes.length; k++) this.operandBytes.push(bytes[k]);
      this.operandOffset.push(this.operandBytes.length);
      this.capacity[index] = max(this.capacity[index], bytes.length);
    }
    this.operandStart.push(this.operandOffset.length - 1);
    this.ruleFlags |= Matcher.Value;
  }

  endRule(name: string, action: i32): void {
    const out = this.out;
    const flags = this.ruleFlags;
    if ((flags & (Matcher.Destination | Matcher.Ports)) != 0) out.settings.needsDestination = true;
    if ((flags & Matcher.ServerName) != 0) out.settings.needsServerName = true;
    this.flags.push(flags);
    this.ruleActions.push(action);
    out.ruleNames.push(name);
    this.portStart.push(this.portLow.length);
    this.nameStart.push(out.names.length);
    this.authorityStart.push(out.authorities.length);
    this.prefixStart.push(out.prefixes.length);
    this.headerStart.push(this.headerIndex.length);
    this.valueStart.push(this.valueIndex.length);
  }

  beginAction(kind: ActionKind): void {
    this.kinds.push(kind);
    this.istio.push(false);
    this.total = 0;
  }

  /** One of the action's clusters, `weight` times as likely as a cluster of weight 1 (hash). */
  staticTarget(weight: u32, cluster: string): void {
    this.addTarget(weight, this.slot(cluster), -1);
  }

  /** A target whose cluster name is made per connection. */
  templateTarget(weight: u32, cluster: ClusterTemplate): void {
    this.addTarget(weight, -1, this.out.templates.length);
    this.out.templates.push(cluster);
    this.out.settings.needsDestination = true;
  }

  /** The action's index. */
  endAction(): i32 {
    this.totals.push(this.total);
    this.targetStart.push(this.weights.length);
    return this.kinds.length - 1;
  }

  /** The reference behaviour's action: router 1 then 2; for Istio, service port 8080 then 8081 (destination port 80). */
  referenceAction(istio: bool): i32 {
    this.beginAction(ActionKind.Reference);
    this.istio[this.kinds.length - 1] = istio;
    if (istio) {
      this.out.settings.needsDestination = true;
      const ports = ["8080", "8081"];
      for (let p = 0; p < ports.length; p++) {
        for (let r = 0; r < 2; r++) this.addTarget(1, this.slot(istioName(REFERENCE_ROUTERS[r], ports[p])), -1);
      }
    } else {
      for (let r = 0; r < 2; r++) this.addTarget(1, this.slot(REFERENCE_ROUTERS[r]), -1);
    }
    return this.endAction();
  }

  actionKind(action: i32): ActionKind {
    return this.kinds[action];
  }

  private addTarget(weight: u32, slot: i32, template: i32): void {
    this.weights.push(weight);
    this.targetSlots.push(slot);
    this.targetTemplates.push(template);
    this.total += weight;
  }

  private slot(name: string): i32 {
    if (this.slots.has(name)) return this.slots.get(name);
    const slot = this.out.clusters.length;
    this.out.clusters.push(name);
    this.slots.set(name, slot);
    return slot;
  }

  finish(defaultAction: i32): CompiledPolicy {
    const out = this.out;
    out.ruleCount = this.flags.length;
    out.flags = StaticArray.fromArray(this.flags);
    out.ruleAction = StaticArray.fromArray(this.ruleActions);
    out.defaultAction = defaultAction;
    out.source = this.sources.build(out.ruleCount);
    out.destination = this.destinations.build(out.ruleCount);
    out.portStart = StaticArray.fromArray(this.portStart);
    out.portLow = StaticArray.fromArray(this.portLow);
    out.portHigh = StaticArray.fromArray(this.portHigh);
    out.nameStart = StaticArray.fromArray(this.nameStart);
    out.authorityStart = StaticArray.fromArray(this.authorityStart);
    out.prefixStart = StaticArray.fromArray(this.prefixStart);
    out.headerStart = StaticArray.fromArray(this.headerStart);
    out.headerIndex = StaticArray.fromArray(this.headerIndex);
    out.valueStart = StaticArray.fromArray(this.valueStart);
    out.valueIndex = StaticArray.fromArray(this.valueIndex);
    out.valueKind = StaticArray.fromArray(this.valueKind);
    out.operandStart = StaticArray.fromArray(this.operandStart);
    out.operandOffset = StaticArray.fromArray(this.operandOffset);
    out.operandBytes = StaticArray.fromArray(this.operandBytes);
    out.valueCapacity = StaticArray.fromArray(this.capacity);
    out.actionKind = StaticArray.fromArray(this.kinds);
    out.actionIstio = StaticArray.fromArray(this.istio);
    out.targetStart = StaticArray.fromArray(this.targetStart);
    out.totalWeight = StaticArray.fromArray(this.totals);
    out.targetWeight = StaticArray.fromArray(this.weights);
    out.targetSlot = StaticArray.fromArray(this.targetSlots);
    out.targetTemplate = StaticArray.fromArray(this.targetTemplates);
    return out;
  }
}
