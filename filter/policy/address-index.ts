// The source (or destination) CIDRs of every rule, indexed so that an address finds the rules
// whose CIDRs contain it with one binary search, whatever the number of CIDRs.
//
// CIDRs are laminar: two either nest or are disjoint. Distinct CIDRs become the nodes of a forest
// (each node's parent is the smallest CIDR containing it), and the 128-bit address space is cut
// into segments, each naming the deepest node that covers it. An address's matching rules are
// then the rule lists of its segment's node and that node's ancestors (at most 129).
import { Address, Cidr } from "./ip";

const ALL: u64 = 0xffffffffffffffff;

@inline function less(aHi: u64, aLo: u64, bHi: u64, bLo: u64): bool {
  return aHi < bHi || (aHi == bHi && aLo < bLo);
}

function hiMask(prefix: i32): u64 {
  return prefix <= 0 ? 0 : prefix >= 64 ? ALL : ALL << <u64>(64 - prefix);
}

function loMask(prefix: i32): u64 {
  return prefix <= 64 ? 0 : prefix >= 128 ? ALL : ALL << <u64>(128 - prefix);
}

export class AddressIndex {
  /** Segment starts, ascending; segment i ends where segment i + 1 starts. The first starts at 0. */
  segmentHi: StaticArray<u64> = new StaticArray<u64>(1);
  segmentLo: StaticArray<u64> = new StaticArray<u64>(1);
  /** The deepest CIDR node covering each segment, or -1. */
  segmentNode: StaticArray<i32> = [-1];
  parent: StaticArray<i32> = new StaticArray<i32>(0);
  /** Node n's rules are rules[listStart[n], listStart[n + 1]), ascending. */
  listStart: StaticArray<i32> = [0];
  rules: StaticArray<i32> = new StaticArray<i32>(0);
  /** Rules that do not constrain this address at all, ascending. */
  wildcard: StaticArray<i32> = new StaticArray<i32>(0);

  /** The nodes containing the last address looked up, deepest first (reused per lookup). */
  readonly chain: StaticArray<i32> = new StaticArray<i32>(129);
  chainLength: i32 = 0;
  /** Rules the last address may match here: its chain's lists and the wildcard rules. */
  candidates: i32 = 0;

  @inline lookup(address: Address): void {
    this.chainLength = 0;
    let count = this.wildcard.length;
    if (address.valid) {
      const hi = address.hi;
      const lo = address.lo;
      const segmentHi = this.segmentHi;
      const segmentLo = this.segmentLo;
      // The last segment starting at or before the address.
      let low = 0;
      let high = segmentHi.length - 1;
      while (low < high) {
        const middle = (low + high + 1) >>> 1;
        if (less(hi, lo, unchecked(segmentHi[middle]), unchecked(segmentLo[middle]))) high = middle - 1;
        else low = middle;
      }
      let node = unchecked(this.segmentNode[low]);
      while (node >= 0) {
        unchecked(this.chain[this.chainLength++] = node);
        count += unchecked(this.listStart[node + 1]) - unchecked(this.listStart[node]);
        node = unchecked(this.parent[node]);
      }
    }
    this.candidates = count;
  }

  /** Whether `rule` has a CIDR containing the last address looked up. */
  contains(rule: i32): bool {
    for (let c = 0; c < this.chainLength; c++) {
      const node = unchecked(this.chain[c]);
      let low = unchecked(this.listStart[node]);
      let high = unchecked(this.listStart[node + 1]) - 1;
      while (low <= high) {
        const middle = (low + high) >>> 1;
        const here = unchecked(this.rules[middle]);
        if (here == rule) return true;
        if (here < rule) low = middle + 1;
        else high = middle - 1;
      }
    }
    return false;
  }
}

// The builder's sort key arrays: module-level because AssemblyScript comparators cannot close
// over locals.
let sortHi: StaticArray<u64> = new StaticArray<u64>(0);
let sortLo: StaticArray<u64> = new StaticArray<u64>(0);
let sortPrefix: StaticArray<i32> = new StaticArray<i32>(0);
let sortRule: StaticArray<i32> = new StaticArray<i32>(0);

/** Start ascending, then the larger network first, then rule order. */
function byStart(a: i32, b: i32): i32 {
  const aHi = unchecked(sortHi[a]), bHi = unchecked(sortHi[b]);
  if (aHi != bHi) return aHi < bHi ? -1 : 1;
  const aLo = unchecked(sortLo[a]), bLo = unchecked(sortLo[b]);
  if (aLo != bLo) return aLo < bLo ? -1 : 1;
  const prefix = unchecked(sortPrefix[a]) - unchecked(sortPrefix[b]);
  return prefix != 0 ? prefix : unchecked(sortRule[a]) - unchecked(sortRule[b]);
}

/** The entry at `root` sinks below its larger children, within order[0, end). */
function siftDown(order: StaticArray<i32>, root: i32, end: i32): void {
  while (true) {
    let child = 2 * root + 1;
    if (child >= end) return;
    if (child + 1 < end && byStart(unchecked(order[child]), unchecked(order[child + 1])) < 0) child++;
    const top = unchecked(order[root]);
    if (byStart(top, unchecked(order[child])) >= 0) return;
    unchecked(order[root] = order[child]);
    unchecked(order[child] = top);
    root = child;
  }
}

/**
 * Heapsort by byStart, a total order (so stability does not matter). Written here rather than
 * Array#sort: the standard library's generic sort is 600 bytes of the module and calls its
 * comparator indirectly; this is 150 and calls it directly.
 */
function sortByStart(order: StaticArray<i32>): void {
  const count = order.length;
  for (let root = (count >> 1) - 1; root >= 0; root--) siftDown(order, root, count);
  for (let end = count - 1; end > 0; end--) {
    const top = unchecked(order[0]);
    unchecked(order[0] = order[end]);
    unchecked(order[end] = top);
    siftDown(order, 0, end);
  }
}

/** Collects (CIDR, rule) pairs, then builds the index. */
export class AddressIndexBuilder {
  private readonly hi: u64[] = new Array<u64>();
  private readonly lo: u64[] = new Array<u64>();
  private readonly prefix: i32[] = new Array<i32>();
  private readonly rule: i32[] = new Array<i32>();

  /** Adds one of rule `rule`'s CIDRs (rules come in order). */
  add(rule: i32, cidr: Cidr): void {
    this.hi.push(cidr.hi & hiMask(cidr.prefix));
    this.lo.push(cidr.lo & loMask(cidr.prefix));
    this.prefix.push(cidr.prefix);
    this.rule.push(rule);
  }

  /** The index over rules [0, ruleCount); those without CIDRs here are its wildcard rules. */
  build(ruleCount: i32): AddressIndex {
    const index = new AddressIndex();
    const constrained = new StaticArray<bool>(ruleCount);
    for (let i = 0; i < this.rule.length; i++) constrained[this.rule[i]] = true;
    const wildcard: i32[] = new Array<i32>();
    for (let r = 0; r < ruleCount; r++) if (!constrained[r]) wildcard.push(r);
    index.wildcard = StaticArray.fromArray(wildcard);
    const count = this.hi.length;
    if (count == 0) return index;
    sortHi = StaticArray.fromArray(this.hi);
    sortLo = StaticArray.fromArray(this.lo);
    sortPrefix = StaticArray.fromArray(this.prefix);
    sortRule = StaticArray.fromArray(this.rule);
    const order = new StaticArray<i32>(count);
    for (let i = 0; i < count; i++) unchecked(order[i] = i);
    sortByStart(order);

    // Nodes: one per distinct CIDR, with its rules.
    const nodeHi: u64[] = new Array<u64>();
    const nodeLo: u64[] = new Array<u64>();
    const nodeEndHi: u64[] = new Array<u64>();
    const nodeEndLo: u64[] = new Array<u64>();
    const listStart: i32[] = new Array<i32>();
    const rules: i32[] = new Array<i32>();
    for (let k = 0; k < count; k++) {
      const e = unchecked(order[k]);
      const hi = sortHi[e], lo = sortLo[e], prefix = sortPrefix[e], rule = sortRule[e];
      const last = nodeHi.length - 1;
      const sameNode = last >= 0 && nodeHi[last] == hi && nodeLo[last] == lo && sortPrefix[unchecked(order[k - 1])] == prefix;
      if (!sameNode) {
        nodeHi.push(hi);
        nodeLo.push(lo);
        nodeEndHi.push(hi | ~hiMask(prefix));
        nodeEndLo.push(lo | ~loMask(prefix));
        listStart.push(rules.length);
      }
      // Equal CIDRs come in rule order: a rule listing one twice is kept once.
      if (sameNode && rules[rules.length - 1] == rule) continue;
      rules.push(rule);
    }
    listStart.push(rules.length);
    sortHi = sortLo = new StaticArray<u64>(0);
    sortPrefix = sortRule = new StaticArray<i32>(0);

    // Sweep in start order with the stack of open nodes; emit a segment wherever the deepest
    // open node changes.
    const nodes = nodeHi.length;
    const parent = new StaticArray<i32>(nodes);
    const segmentHi: u64[] = [0];
    const segmentLo: u64[] = [0];
    const segmentNode: i32[] = [-1];
    const stack: i32[] = new Array<i32>();
    for (let n = 0; n <= nodes; n++) {
      // Close the open nodes that end before this one starts (all of them after the last node).
      while (stack.length > 0) {
        const top = stack[stack.length - 1];
        if (n < nodes && !less(nodeEndHi[top], nodeEndLo[top], nodeHi[n], nodeLo[n])) break;
        stack.pop();
        const endHi = nodeEndHi[top], endLo = nodeEndLo[top];
        if (endHi == ALL && endLo == ALL) continue;
        const nextHi = endLo == ALL ? endHi + 1 : endHi;
        const nextLo = endLo + 1;
        emitSegment(segmentHi, segmentLo, segmentNode, nextHi, nextLo, stack.length > 0 ? stack[stack.length - 1] : -1);
      }
      if (n == nodes) break;
      parent[n] = stack.length > 0 ? stack[stack.length - 1] : -1;
      emitSegment(segmentHi, segmentLo, segmentNode, nodeHi[n], nodeLo[n], n);
      stack.push(n);
    }
    index.segmentHi = StaticArray.fromArray(segmentHi);
    index.segmentLo = StaticArray.fromArray(segmentLo);
    index.segmentNode = StaticArray.fromArray(segmentNode);
    index.parent = parent;
    index.listStart = StaticArray.fromArray(listStart);
    index.rules = StaticArray.fromArray(rules);
    return index;
  }
}

/** Starts a segment at (hi, lo) owned by `node`, merging with the previous one where they agree. */
function emitSegment(segmentHi: u64[], segmentLo: u64[], segmentNode: i32[], hi: u64, lo: u64, node: i32): void {
  const last = segmentHi.length - 1;
  if (segmentHi[last] == hi && segmentLo[last] == lo) {
    segmentNode[last] = node;
    if (last > 0 && segmentNode[last - 1] == node) {
      segmentHi.pop();
      segmentLo.pop();
      segmentNode.pop();
    }
  } else if (segmentNode[last] != node) {
    segmentHi.push(hi);
    segmentLo.push(lo);
    segmentNode.push(node);
  }
}
