// Every metric the filter defines, named once here. Envoy shows them under its Wasm stats
// namespace; names follow Envoy's `<prefix>.<name>` convention, with the cluster or rule as a
// path segment so tag extraction can pull it out.
import { msg } from "./messages";
import { defineMetric, incrementMetric, MetricType } from "./sdk";

/** Distinct per-cluster and per-rule counters kept at most, each; later names count only in totals. */
const MAX_NAMED_COUNTERS = 512;

/** What NamedCounters.id answers once the limit is reached. */
export const NO_COUNTER = u32.MAX_VALUE;

/**
 * Counters named `<prefix><name><suffix>`, found by the bare name. Defined when a configuration
 * names them (or a cluster name is made from a placeholder), up to MAX_NAMED_COUNTERS.
 */
export class NamedCounters {
  private readonly ids: Map<string, u32> = new Map();

  constructor(private readonly prefix: string, private readonly suffix: string) {}

  /** The counter for `name`, defining it if needed; NO_COUNTER once the limit is reached. */
  id(name: string): u32 {
    if (this.ids.has(name)) return this.ids.get(name);
    if (this.ids.size >= MAX_NAMED_COUNTERS) return NO_COUNTER;
    const id = defineMetric(MetricType.Counter, this.prefix + name + this.suffix);
    this.ids.set(name, id);
    return id;
  }
}

export class FilterStats {
  readonly routed: u32 = defineMetric(MetricType.Counter, msg("wasmerang.routed"));
  readonly rejected: u32 = defineMetric(MetricType.Counter, msg("wasmerang.rejected"));
  readonly passthrough: u32 = defineMetric(MetricType.Counter, msg("wasmerang.passthrough"));
  readonly unmatched: u32 = defineMetric(MetricType.Counter, msg("wasmerang.unmatched"));
  readonly badAddress: u32 = defineMetric(MetricType.Counter, msg("wasmerang.error.bad_address"));
  readonly filterStateFailed: u32 = defineMetric(MetricType.Counter, msg("wasmerang.error.filter_state"));
  /** Per-cluster and per-rule counters; the router keeps their ids by cluster slot and rule. */
  readonly clusters: NamedCounters = new NamedCounters(msg("wasmerang.cluster."), msg(".routed"));
  readonly rules: NamedCounters = new NamedCounters(msg("wasmerang.rule."), msg(".matched"));
}
