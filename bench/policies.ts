// The policies the filter-cost figures compare. Every policy here needs only the source address,
// as the baseline module reads only that: a policy with destination or SNI matchers adds one
// property read (one host call) per connection on top.
import { sourceAddresses } from "./connections.js";

const FIRST_SOURCES = sourceAddresses(4096);

/** Ten rules on source CIDRs and parity; the bench's sources match the last or none. */
export function tenRulePolicy(): object {
  return {
    rules: [
      ...Array.from({ length: 9 }, (_, i) => ({ name: `office-${i}`, match: { source_cidrs: [`172.${16 + i}.0.0/16`] }, action: { cluster: `office-${i}` } })),
      { name: "even-clients", match: { source_cidrs: ["10.0.0.0/8"], source_parity: "even" }, action: { cluster: "egress-router1" } },
    ],
    default: { cluster: "egress-router2" },
  };
}

/**
 * 10,000 rules, one /32 each: the bench's 4,096 sources match rules spread over the first 4,096
 * positions (in an order unrelated to the addresses'), the rest are never reached.
 */
export function tenThousandRulePolicy(): object {
  const rules = Array.from({ length: 10_000 }, (_, i) => {
    const source = i < FIRST_SOURCES.length ? FIRST_SOURCES[(i * 2_654_435_761) % FIRST_SOURCES.length]!.replace(/:\d+$/, "") : `172.${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
    return { match: { source_cidrs: [`${source}/32`] }, action: { cluster: `c${i % 64}` } };
  });
  return { rules, default: { cluster: "egress-router1" } };
}

/** A reputation list: one rule rejecting 100,000 networks (50,000 /32s, 50,000 /24s), before the ten-rule policy. */
export function reputationListPolicy(): object {
  const cidrs = Array.from({ length: 100_000 }, (_, i) => {
    if (i < 50_000) return `100.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`;
    const j = i - 50_000;
    return `11.${j >> 8}.${j & 255}.0/24`;
  });
  const ten = tenRulePolicy() as { rules: object[] };
  return { ...ten, rules: [{ name: "reputation", match: { source_cidrs: cidrs }, action: { reject: true } }, ...ten.rules] };
}
