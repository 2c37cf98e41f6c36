// Counters and gauges of a relaying process, by name. A stat is an object resolved once (at
// configuration time): the data path only bumps its number.

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

  /** Every stat as [name, value, kind], sorted by name as Envoy's /stats prints them. */
  entries(): [string, number, "counter" | "gauge"][] {
    const all: [string, number, "counter" | "gauge"][] = [
      ...[...this.counters].map(([name, c]): [string, number, "counter"] => [name, c.value, "counter"]),
      ...[...this.gauges].map(([name, g]): [string, number, "gauge"] => [name, g.value, "gauge"]),
    ];
    return all.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }
}
