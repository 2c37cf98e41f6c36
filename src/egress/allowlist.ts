// The egress router's allowlist: which original destinations it may connect to. Deny by default.
// Addresses are normalized first (IPv4-mapped IPv6 is checked as IPv4), and special-purpose
// ranges — loopback, link-local, unspecified, multicast, broadcast, metadata services, IPv6 forms
// embedding IPv4 — are reachable only through an entry inside that range: `0.0.0.0/0` does not
// open 127.0.0.1.
import ipaddr from "ipaddr.js";

export interface AllowRule {
  cidr: [ipaddr.IPv4 | ipaddr.IPv6, number];
  ports: [number, number][];
  text: string;
}

// Besides loopback, link-local, unspecified and multicast: the shared address space and unique
// local IPv6 (cloud metadata services live there: 100.100.100.200, fd00:ec2::254), and the IPv6
// ranges that embed an IPv4 address (IPv4-compatible, NAT64, 6to4, Teredo), which could otherwise
// reach any IPv4 destination through an IPv6 rule.
const SPECIAL_RANGES = ["127.0.0.0/8", "169.254.0.0/16", "0.0.0.0/8", "224.0.0.0/4", "255.255.255.255/32", "100.64.0.0/10",
  "::1/128", "fe80::/10", "::/128", "ff00::/8", "fc00::/7", "::/96", "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32",
].map((cidr) => ipaddr.parseCIDR(cidr));

export class AllowlistError extends Error {}

function parsePorts(text: string, rule: string): [number, number][] {
  if (text === "*") return [[1, 65535]];
  return text.split(",").map((part) => {
    const [low, high = low] = part.split("-");
    const range: [number, number] = [Number(low), Number(high)];
    if (!range.every((p) => Number.isInteger(p) && p >= 1 && p <= 65535) || range[0] > range[1]) {
      throw new AllowlistError(`allow rule '${rule}': bad port or range '${part}' (use 443, 80,443, 8000-9000 or *)`);
    }
    return range;
  });
}

/** `CIDR:PORTS`, with IPv6 in brackets: `10.0.0.0/8:443`, `[2001:db8::/32]:80,443`, `127.0.0.1/32:*`. */
export function parseAllowRule(text: string): AllowRule {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):([0-9*,-]+)$/.exec(text);
  if (match === null) throw new AllowlistError(`allow rule '${text}': expected CIDR:PORTS (IPv6 as [CIDR]:PORTS)`);
  const cidrText = match[1] ?? match[2]!;
  let cidr: [ipaddr.IPv4 | ipaddr.IPv6, number];
  try {
    cidr = ipaddr.parseCIDR(cidrText.includes("/") ? cidrText : `${cidrText}/${cidrText.includes(":") ? 128 : 32}`);
  } catch {
    throw new AllowlistError(`allow rule '${text}': '${cidrText}' is not a CIDR`);
  }
  return { cidr, ports: parsePorts(match[3]!, text), text };
}

function normalize(address: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  try {
    const parsed = ipaddr.parse(address);
    return parsed.kind() === "ipv6" && (parsed as ipaddr.IPv6).isIPv4MappedAddress() ? (parsed as ipaddr.IPv6).toIPv4Address() : parsed;
  } catch {
    return undefined;
  }
}

function within(inner: [ipaddr.IPv4 | ipaddr.IPv6, number], outer: [ipaddr.IPv4 | ipaddr.IPv6, number]): boolean {
  return inner[0].kind() === outer[0].kind() && inner[1] >= outer[1] && inner[0].match(outer);
}

export type Verdict = { allowed: true; rule: string } | { allowed: false; reason: string };

export class Allowlist {
  constructor(readonly rules: readonly AllowRule[]) {}

  static parse(rules: readonly string[]): Allowlist {
    return new Allowlist(rules.map(parseAllowRule));
  }

  check(address: string, port: number): Verdict {
    const ip = normalize(address);
    if (ip === undefined) return { allowed: false, reason: `'${address}' is not an IP address` };
    const special = SPECIAL_RANGES.find((range) => ip.kind() === range[0].kind() && ip.match(range));
    for (const rule of this.rules) {
      if (rule.cidr[0].kind() !== ip.kind() || !ip.match(rule.cidr)) continue;
      if (special !== undefined && !within(rule.cidr, special)) continue;
      if (rule.ports.some(([low, high]) => port >= low && port <= high)) return { allowed: true, rule: rule.text };
    }
    const why = special !== undefined ? ` (special-purpose range ${special[0].toString()}/${special[1]} needs an allow rule inside it)` : "";
    return { allowed: false, reason: `${ip.toString()}:${port} is not in the allowlist${why}` };
  }
}
