// Counters and gauges of a relaying process, by name. A stat is an object resolved once (at
// configuration time): the data path only bumps its number.
import type { StatSample } from "./admin-render.js";

export interface Counter {
  value: number;
}

function stat(stats: Map<string, Counter>, name: string): Counter {
  let found = stats.get(name);
  if (found === undefined) {
    found = { value: 0 };
    stats.set(name, found);
  }
  return found;
}

export class StatsStore {
  private readonly counters = new Map<string, Counter>();
  private readonly gauges = new Map<string, Counter>();

  counter(name: string): Counter {
    return stat(this.counters, name);
  }

  gauge(name: string): Counter {
    return stat(this.gauges, name);
  }

  /** Every stat, in no particular order (admin sorts what it prints). */
  samples(): StatSample[] {
    const all: StatSample[] = [];
    for (const [name, { value }] of this.counters) all.push({ name, value, kind: "counter" });
    for (const [name, { value }] of this.gauges) all.push({ name, value, kind: "gauge" });
    return all;
  }
}
