// The connection loop every filter-cost figure uses, in-process or under callgrind.
import type { FilterHarness } from "../src/host/harness.js";

/** Distinct client addresses, so that the filter cannot profit from one repeated source. */
export function sourceAddresses(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:40000`);
}

/** Opens and closes `count` connections; each must have been routed. */
export function connectMany(harness: FilterHarness, addresses: readonly string[], count: number, label: string): void {
  for (let i = 0; i < count; i++) {
    const connection = harness.connect({ source: addresses[i % addresses.length]!, destination: "203.0.113.9:443" });
    if (connection.cluster === undefined) throw new Error(`${label}: no cluster set`);
    connection.close();
  }
}
