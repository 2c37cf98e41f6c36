// Metrics defined by Wasm modules. Like Envoy's stats, a metric is identified by its name within
// the plugin, so a reloaded VM that defines the same name keeps counting into the same stat.
import { MetricType } from "./abi.js";

export type MetricKind = "counter" | "gauge" | "histogram";

export interface Metric {
  readonly name: string;
  readonly kind: MetricKind;
  value: bigint;
  /** Histograms only: number of recorded samples (value holds their sum). */
  samples: number;
}

const KINDS: Record<number, MetricKind> = {
  [MetricType.Counter]: "counter",
  [MetricType.Gauge]: "gauge",
  [MetricType.Histogram]: "histogram",
};

export class MetricRegistry {
  private readonly byName = new Map<string, number>();
  private readonly metrics: Metric[] = [];

  /** The metric's id, or undefined for an unknown type or a name defined with another type. */
  define(type: number, name: string): number | undefined {
    const kind = KINDS[type];
    if (kind === undefined) return undefined;
    const existing = this.byName.get(name);
    if (existing !== undefined) return this.metrics[existing]!.kind === kind ? existing : undefined;
    this.metrics.push({ name, kind, value: 0n, samples: 0 });
    this.byName.set(name, this.metrics.length - 1);
    return this.metrics.length - 1;
  }

  get(id: number): Metric | undefined {
    return this.metrics[id];
  }

  /** Every metric's name, in the order the module defined them. */
  names(): string[] {
    return this.metrics.map((metric) => metric.name);
  }

  /** Counters only go up (Envoy refuses a negative increment on a counter). */
  increment(id: number, delta: bigint): boolean {
    const metric = this.metrics[id];
    if (metric === undefined || metric.kind === "histogram") return false;
    if (metric.kind === "counter" && delta < 0n) return false;
    metric.value += delta;
    return true;
  }

  record(id: number, value: bigint): boolean {
    const metric = this.metrics[id];
    if (metric === undefined) return false;
    if (metric.kind === "histogram") {
      metric.value += value;
      metric.samples++;
    } else {
      metric.value = value;
    }
    return true;
  }

  byMetricName(name: string): Metric | undefined {
    const id = this.byName.get(name);
    return id === undefined ? undefined : this.metrics[id];
  }

  all(): readonly Metric[] {
    return this.metrics;
  }
}
