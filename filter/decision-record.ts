// The decision as filter state for Envoy's access logs (policy field record_decision). Envoy
// keeps a property a module sets as filter state "wasm." + the path as the module sent it
// (source/extensions/common/wasm/context.cc Context::setProperty, WasmStateKeyPrefix in
// wasm_state.h), and %FILTER_STATE(wasm.wasmerang.rule:PLAIN)% prints its bytes. The path goes as
// one segment with dots (not NUL-separated segments), so the key is exactly wasm.wasmerang.rule.
// Each value is encoded once, on first use: recording allocates nothing per connection, except
// for a cluster name made from a {dst_port} template.
import { msg } from "./messages";
import { formatNumber, setProperty, utf8 } from "./sdk";
import { CompiledPolicy } from "./policy/compiled";
import { Decision, DEFAULT_RULE, Outcome } from "./policy/decision";

const RULE = utf8(msg("wasmerang.rule"));
const CLUSTER = utf8(msg("wasmerang.cluster"));
const OUTCOME = utf8(msg("wasmerang.outcome"));
/** By Outcome; "error" also when Envoy refused the cluster (set_envoy_filter_state failed). */
const OUTCOMES: ArrayBuffer[] = [utf8("route"), utf8("reject"), utf8("passthrough"), utf8("error")];

export class DecisionRecord {
  /** Per rule, then the default last. */
  private readonly rules: StaticArray<ArrayBuffer | null>;
  private readonly clusters: StaticArray<ArrayBuffer | null>;

  constructor(private readonly policy: CompiledPolicy) {
    this.rules = new StaticArray<ArrayBuffer | null>(policy.ruleCount + 1);
    this.clusters = new StaticArray<ArrayBuffer | null>(policy.clusters.length);
  }

  /** Rule (its name, else rules[i], or default), outcome, and the cluster when routed. */
  record(decision: Decision, applied: bool): void {
    setProperty(RULE, this.rule(decision.rule));
    const routed = decision.outcome == Outcome.Route && applied;
    setProperty(OUTCOME, OUTCOMES[applied ? <i32>decision.outcome : <i32>Outcome.Error]);
    if (routed) setProperty(CLUSTER, decision.cluster < 0 ? utf8(decision.dynamicCluster) : this.cluster(decision.cluster));
  }

  private rule(rule: i32): ArrayBuffer {
    const at = rule == DEFAULT_RULE ? this.policy.ruleCount : rule;
    const cached = unchecked(this.rules[at]);
    if (cached != null) return cached;
    const name = this.policy.ruleName(rule);
    const encoded = utf8(name.length > 0 ? name : "rules[" + formatNumber(rule) + "]");
    unchecked(this.rules[at] = encoded);
    return encoded;
  }

  private cluster(slot: i32): ArrayBuffer {
    const cached = unchecked(this.clusters[slot]);
    if (cached != null) return cached;
    const encoded = utf8(this.policy.clusters[slot]);
    unchecked(this.clusters[slot] = encoded);
    return encoded;
  }
}
