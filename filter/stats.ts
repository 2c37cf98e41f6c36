// Every metric the filter defines, named once here. Envoy shows them under its Wasm stats
// namespace; names follow Envoy's `<prefix>.<name>` convention, with the cluster or rule as a
// path segment so tag extraction can pull it out.
import { defineMetric, incrementMetric, MetricType } from "./sdk";

/** Distinct per-cluster and per-rule counters kept at most; later names count only in totals. */
const MAX_NAMED_COUNTERS = 512;

export class FilterStats {
  readonly routed: u32 = defineMetric(MetricType.Counter, "wasmerang.routed");
  readonly rejected: u32 = defineMetric(MetricType.Counter, "wasmerang.rejected");
  readonly passthrough: u32 = defineMetric(MetricType.Counter, "wasmerang.passthrough");
  readonly unmatched: u32 = defineMetric(MetricType.Counter, "wasmerang.unmatched");
  readonly badAddress: u32 = defineMetric(MetricType.Counter, "wasmerang.error.bad_address");
  readonly filterStateFailed: u32 = defineMetric(MetricType.Counter, "wasmerang.error.filter_state");
  private readonly named: Map<string, u32> = new Map();

  /** Counts a connection routed to `cluster`. */
  countCluster(cluster: string): void {
    incrementMetric(this.routed, 1);
    this.countNamed("wasmerang.cluster." + cluster + ".routed");
  }

  /** Counts a connection matched by a named rule. */
  countRule(rule: string): void {
    if (rule.length > 0) this.countNamed("wasmerang.rule." + rule + ".matched");
  }

  private countNamed(name: string): void {
    if (this.named.has(name)) {
      incrementMetric(this.named.get(name), 1);
    } else if (this.named.size < MAX_NAMED_COUNTERS) {
      const id = defineMetric(MetricType.Counter, name);
      this.named.set(name, id);
      incrementMetric(id, 1);
    }
  }
}
