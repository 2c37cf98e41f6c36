// The policy compiled at configure time into flat arrays: CIDRs into address indexes, every other
// matcher and action into per-rule ranges of shared arrays. The data path reads only this. Flat
// arrays, not an object per rule, keep the live heap a few dozen objects whatever the policy's
// size, so the (rare) collection that marks it stays cheap.
import { msg } from "../messages";
import { AddressIndex, AddressIndexBuilder } from "./address-index";
import { ActionKind, ClusterTemplate, Parity, Policy, Rule, RuleAction } from "./model";

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

export class CompiledPolicy {
  ruleCount: i32 = 0;
  flags: StaticArray<u32> = new StaticArray<u32>(0);
  ruleAction: StaticArray<i32> = new StaticArray<i32>(0);
  /** Each rule's name, "" when unnamed. */
  ruleNames: string[] = new Array<string>();
  source: AddressIndex = new AddressIndex();
  destination: AddressIndex = new AddressIndex();
  /** Rule r's destination ports are [portLow[i], portHigh[i]] for i in [portStart[r], portStart[r + 1]). */
  portStart: StaticArray<i32> = new StaticArray<i32>(0);
  portLow: StaticArray<i32> = new StaticArray<i32>(0);
  portHigh: StaticArray<i32> = new StaticArray<i32>(0);
  /** Server name patterns, the same way; `.suffix` for `*.suffix`. */
  nameStart: StaticArray<i32> = new StaticArray<i32>(0);
  names: string[] = new Array<string>();
  authorityStart: StaticArray<i32> = new StaticArray<i32>(0);
  authorities: string[] = new Array<string>();
  prefixStart: StaticArray<i32> = new StaticArray<i32>(0);
  prefixes: string[] = new Array<string>();
  /** Header matchers: an index into Policy.headerNames and the exact value. */
  headerStart: StaticArray<i32> = new StaticArray<i32>(0);
  headerIndex: StaticArray<i32> = new StaticArray<i32>(0);
  headerValue: string[] = new Array<string>();
  /**
   * Value matchers: rule r's are m in [valueStart[r], valueStart[r + 1]), each reading
   * Facts.values[valueIndex[m]] as valueKind[m] with operands [operandStart[m], operandStart[m + 1]).
   */
  valueStart: StaticArray<i32> = new StaticArray<i32>(0);
  valueIndex: StaticArray<i32> = new StaticArray<i32>(0);
  valueKind: StaticArray<i32> = new StaticArray<i32>(0);
  operandStart: StaticArray<i32> = new StaticArray<i32>(0);
  operands: string[] = new Array<string>();

  actionKind: StaticArray<i32> = new StaticArray<i32>(0);
  actionIstio: StaticArray<bool> = new StaticArray<bool>(0);
  /** Action a's targets are [targetStart[a], targetStart[a + 1]); a reference action has one per router (and port). */
  targetStart: StaticArray<i32> = new StaticArray<i32>(0);
  totalWeight: StaticArray<u32> = new StaticArray<u32>(0);
  targetWeight: StaticArray<u32> = new StaticArray<u32>(0);
  /** The target's cluster slot, or -1 when its name has a placeholder (then targetTemplate). */
  targetSlot: StaticArray<i32> = new StaticArray<i32>(0);
  targetTemplate: StaticArray<i32> = new StaticArray<i32>(0);
  templates: ClusterTemplate[] = new Array<ClusterTemplate>();
  defaultAction: i32 = 0;
  /** Static cluster names, by slot. */
  clusters: string[] = new Array<string>();

  /** The parsed policy's settings (log level, HTTP, PROXY header); its rules are dropped. */
  constructor(readonly settings: Policy) {}

  ruleName(rule: i32): string {
    return rule < 0 ? "default" : this.ruleNames[rule];
  }
}

/** Appends `items` to `into` and returns the new end offset. */
function appendAll<T>(into: T[], items: T[]): i32 {
  for (let i = 0; i < items.length; i++) into.push(items[i]);
  return into.length;
}

class Compiler {
  private readonly slots: Map<string, i32> = new Map();
  private readonly kinds: i32[] = new Array<i32>();
  private readonly istio: bool[] = new Array<bool>();
  private readonly targetStart: i32[] = [0];
  private readonly totals: u32[] = new Array<u32>();
  private readonly weights: u32[] = new Array<u32>();
  private readonly targetSlots: i32[] = new Array<i32>();
  private readonly targetTemplates: i32[] = new Array<i32>();

  constructor(private readonly out: CompiledPolicy) {}

  private slot(name: string): i32 {
    if (this.slots.has(name)) return this.slots.get(name);
    const slot = this.out.clusters.length;
    this.out.clusters.push(name);
    this.slots.set(name, slot);
    return slot;
  }

  private target(weight: u32, slot: i32, template: i32): void {
    this.weights.push(weight);
    this.targetSlots.push(slot);
    this.targetTemplates.push(template);
  }

  action(action: RuleAction): i32 {
    const index = this.kinds.length;
    this.kinds.push(action.kind);
    this.istio.push(action.istio);
    this.totals.push(action.totalWeight);
    if (action.kind == ActionKind.Reference) {
      // Router 1 then 2; for Istio, service port 8080 then 8081 (destination port 80).
      const ports = action.istio ? ["8080", "8081"] : [""];
      for (let p = 0; p < ports.length; p++) {
        for (let r = 0; r < 2; r++) {
          this.target(1, this.slot(action.istio ? istioName(REFERENCE_ROUTERS[r], ports[p]) : REFERENCE_ROUTERS[r]), -1);
        }
      }
    }
    for (let i = 0; i < action.clusters.length; i++) {
      const target = action.clusters[i];
      const template = target.cluster;
      if (template.isStatic) {
        this.target(target.weight, this.slot(template.pieces[0]), -1);
      } else {
        this.target(target.weight, -1, this.out.templates.length);
        this.out.templates.push(template);
      }
    }
    this.targetStart.push(this.weights.length);
    return index;
  }

  finish(): void {
    const out = this.out;
    out.actionKind = StaticArray.fromArray(this.kinds);
    out.actionIstio = StaticArray.fromArray(this.istio);
    out.targetStart = StaticArray.fromArray(this.targetStart);
    out.totalWeight = StaticArray.fromArray(this.totals);
    out.targetWeight = StaticArray.fromArray(this.weights);
    out.targetSlot = StaticArray.fromArray(this.targetSlots);
    out.targetTemplate = StaticArray.fromArray(this.targetTemplates);
  }
}

function flagsOf(rule: Rule): u32 {
  let flags: u32 = 0;
  if (rule.sourceCidrs.length > 0) flags |= Matcher.Source;
  if (rule.destinationCidrs.length > 0) flags |= Matcher.Destination;
  if (rule.destinationPorts.length > 0) flags |= Matcher.Ports;
  if (rule.serverNames.length > 0) flags |= Matcher.ServerName;
  if (rule.sourceParity == Parity.Even) flags |= Matcher.Even;
  if (rule.sourceParity == Parity.Odd) flags |= Matcher.Odd;
  if (rule.isHttpOnly) flags |= Matcher.Request;
  if (rule.valueMatchers.length > 0) flags |= Matcher.Value;
  return flags;
}

/** Compiles the parsed policy; the parsed rules are released (their CIDRs live on in the indexes). */
export function compilePolicy(policy: Policy): CompiledPolicy {
  const out = new CompiledPolicy(policy);
  const rules = policy.rules;
  const count = rules.length;
  const compiler = new Compiler(out);
  const sources = new AddressIndexBuilder();
  const destinations = new AddressIndexBuilder();
  const flags = new StaticArray<u32>(count);
  const actions = new StaticArray<i32>(count);
  const portStart: i32[] = [0];
  const portLow: i32[] = new Array<i32>();
  const portHigh: i32[] = new Array<i32>();
  const nameStart: i32[] = [0];
  const authorityStart: i32[] = [0];
  const prefixStart: i32[] = [0];
  const headerStart: i32[] = [0];
  const headerIndex: i32[] = new Array<i32>();
  const valueStart: i32[] = [0];
  const valueIndex: i32[] = new Array<i32>();
  const valueKind: i32[] = new Array<i32>();
  const operandStart: i32[] = [0];
  for (let r = 0; r < count; r++) {
    const rule = rules[r];
    flags[r] = flagsOf(rule);
    actions[r] = compiler.action(rule.action);
    out.ruleNames.push(rule.name);
    sources.addRule(r, rule.sourceCidrs);
    destinations.addRule(r, rule.destinationCidrs);
    for (let i = 0; i < rule.destinationPorts.length; i++) {
      portLow.push(rule.destinationPorts[i].low);
      portHigh.push(rule.destinationPorts[i].high);
    }
    portStart.push(portLow.length);
    nameStart.push(appendAll(out.names, rule.serverNames));
    authorityStart.push(appendAll(out.authorities, rule.authorities));
    prefixStart.push(appendAll(out.prefixes, rule.pathPrefixes));
    appendAll(headerIndex, rule.headerIndexes);
    headerStart.push(appendAll(out.headerValue, rule.headerValues));
    const matchers = rule.valueMatchers;
    for (let m = 0; m < matchers.length; m++) {
      valueIndex.push(matchers[m].index);
      valueKind.push(matchers[m].kind);
      operandStart.push(appendAll(out.operands, matchers[m].operands));
    }
    valueStart.push(valueIndex.length);
  }
  out.ruleCount = count;
  out.flags = flags;
  out.ruleAction = actions;
  out.defaultAction = compiler.action(policy.defaultAction);
  compiler.finish();
  out.source = sources.build();
  out.destination = destinations.build();
  out.portStart = StaticArray.fromArray(portStart);
  out.portLow = StaticArray.fromArray(portLow);
  out.portHigh = StaticArray.fromArray(portHigh);
  out.nameStart = StaticArray.fromArray(nameStart);
  out.authorityStart = StaticArray.fromArray(authorityStart);
  out.prefixStart = StaticArray.fromArray(prefixStart);
  out.headerStart = StaticArray.fromArray(headerStart);
  out.headerIndex = StaticArray.fromArray(headerIndex);
  out.valueStart = StaticArray.fromArray(valueStart);
  out.valueIndex = StaticArray.fromArray(valueIndex);
  out.valueKind = StaticArray.fromArray(valueKind);
  out.operandStart = StaticArray.fromArray(operandStart);
  policy.rules = new Array<Rule>();
  return out;
}
