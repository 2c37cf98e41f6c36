// Applies the policy to one TCP connection or HTTP request: reads the properties (and headers)
// the policy needs, decides, and tells Envoy — through set_envoy_filter_state for tcp_proxy, or
// through the request header the route's cluster_header names. Never traps on what the host
// returns: a missing or garbled property only means fewer facts. A routed connection allocates
// nothing: facts are parsed into reused objects and each cluster's filter-state arguments and
// counter are made once.
import {
  closeStream, encodeFilterState, formatNumber, FILTER_STATE_ORIGINAL_DST_ADDRESS, FILTER_STATE_TCP_PROXY_CLUSTER, getHeader, getPropertyInto, getPropertyString, incrementMetric, utf8,
  log, LogLevel, MapType, propertyPath, removeHeader, replaceHeader, sendLocalResponse, setEnvoyFilterState, StreamType, WasmResult,
} from "./sdk";
import { msg } from "./messages";
import { CompiledPolicy, Matcher } from "./policy/compiled";
import { decide, Decision, DEFAULT_RULE, failedMatcher, Outcome } from "./policy/decision";
import { Address, parseSocketAddress } from "./policy/ip";
import { asciiLower } from "./policy/text";
import { Facts } from "./policy/model";
import { FilterStats, NO_COUNTER } from "./stats";
import { proxyHeader } from "./proxy-header";
import { DecisionRecord } from "./decision-record";

const SOURCE_ADDRESS = propertyPath(["source", "address"]);
const DESTINATION_ADDRESS = propertyPath(["destination", "address"]);
const SERVER_NAME = propertyPath(["connection", "requested_server_name"]);

/** Longer than any address Envoy spells (`[v6 with embedded v4]:port` is 53 bytes). */
const ADDRESS_BYTES = 64;

function header(name: string): string {
  const value = getHeader(MapType.HttpRequestHeaders, name);
  return value == null ? "" : value;
}

/** The address property's raw bytes, kept for the debug log line. */
class AddressProperty {
  readonly bytes: StaticArray<u8> = new StaticArray<u8>(ADDRESS_BYTES);
  length: i32 = -1;

  read(path: ArrayBuffer, into: Address): void {
    this.length = getPropertyInto(path, this.bytes);
    parseSocketAddress(this.bytes, this.length, into);
  }

  get text(): string {
    if (this.length < 0) return "-";
    return String.UTF8.decodeUnsafe(changetype<usize>(this.bytes), <usize>min(this.length, ADDRESS_BYTES));
  }
}

/** The policy's name for a matcher, as explain prints it. */
function matcherName(matcher: u32): string {
  if (matcher == Matcher.Source) return msg("source_cidrs");
  if (matcher == Matcher.Even || matcher == Matcher.Odd) return msg("source_parity");
  if (matcher == Matcher.Destination) return msg("destination_cidrs");
  if (matcher == Matcher.Ports) return msg("destination_ports");
  if (matcher == Matcher.ServerName) return msg("server_names");
  if (matcher == Matcher.Value) return msg("metadata or filter_state");
  return msg("HTTP matchers (authorities, path_prefixes, headers)");
}

export class Router {
  private readonly facts: Facts = new Facts();
  private readonly decision: Decision = new Decision();
  private readonly sourceProperty: AddressProperty = new AddressProperty();
  private readonly destinationProperty: AddressProperty = new AddressProperty();
  /** Per cluster slot: set_envoy_filter_state's arguments (made on first use) and the counter. */
  private readonly encodings: StaticArray<ArrayBuffer | null>;
  private readonly clusterCounters: StaticArray<u32>;
  private readonly ruleCounters: StaticArray<u32>;
  private readonly wantsLog: bool;
  private readonly record: DecisionRecord | null;
  /** The metadata and filter state paths the policy's matchers read, encoded once. */
  private readonly valuePaths: ArrayBuffer[] = new Array<ArrayBuffer>();
  /** The PROXY header the last routed connection must send first, if the policy asks for one. */
  pendingHeader: ArrayBuffer | null = null;

  constructor(readonly policy: CompiledPolicy, readonly stats: FilterStats, readonly logLevel: i32) {
    this.wantsLog = logLevel <= LogLevel.Debug;
    this.record = policy.settings.recordDecision ? new DecisionRecord(policy) : null;
    const clusters = policy.clusters;
    const clusterCounters = new StaticArray<u32>(clusters.length);
    for (let i = 0; i < clusters.length; i++) clusterCounters[i] = stats.clusters.id(clusters[i]);
    const ruleCounters = new StaticArray<u32>(policy.ruleCount);
    for (let r = 0; r < policy.ruleCount; r++) {
      const name = policy.ruleNames[r];
      ruleCounters[r] = name.length > 0 ? stats.rules.id(name) : NO_COUNTER;
    }
    this.encodings = new StaticArray<ArrayBuffer | null>(clusters.length);
    this.clusterCounters = clusterCounters;
    this.ruleCounters = ruleCounters;
    const paths = policy.settings.valuePaths;
    for (let i = 0; i < paths.length; i++) this.valuePaths.push(utf8(paths[i]));
    // Only as much of each value as the longest operand compared with it: that decides.
    for (let i = 0; i < paths.length; i++) this.facts.valueBytes.push(new StaticArray<u8>(policy.valueCapacity[i]));
    this.facts.valueLengths = new StaticArray<i32>(paths.length);
  }

  /** Decides for the current connection; returns false when the connection was closed. */
  routeConnection(): bool {
    this.pendingHeader = null;
    this.facts.isRequest = false;
    this.route();
    const decision = this.decision;
    if (decision.outcome == Outcome.Route && this.policy.settings.proxyHeader.version != 0) this.prepareHeader();
    this.count();
    const status = this.apply();
    const record = this.record;
    if (record != null) record.record(decision, status == WasmResult.Ok);
    if (this.wantsLog) this.logDecision(status);
    return decision.outcome != Outcome.Reject;
  }

  /**
   * Decides for the current HTTP request and writes the cluster into the policy's cluster
   * header. A client's own copy of that header is always replaced or removed. Returns false when
   * the request was answered locally (reject).
   */
  routeRequest(): bool {
    const facts = this.facts;
    const names = this.policy.settings.headerNames;
    if (facts.headerValues.length != names.length) facts.headerValues = new Array<string>(names.length);
    for (let i = 0; i < names.length; i++) facts.headerValues[i] = header(names[i]);
    let authority = asciiLower(header(":authority"));
    const colon = authority.lastIndexOf(":");
    if (colon > authority.lastIndexOf("]")) authority = authority.substring(0, colon);
    facts.authority = authority;
    facts.path = header(":path");
    facts.isRequest = true;
    this.route();
    this.count();
    this.applyToRequest();
    const record = this.record;
    if (record != null) record.record(this.decision, true);
    if (this.wantsLog) this.logDecision(WasmResult.Ok);
    return this.decision.outcome != Outcome.Reject;
  }

  private route(): void {
    const facts = this.facts;
    const settings = this.policy.settings;
    this.sourceProperty.read(SOURCE_ADDRESS, facts.source);
    if (settings.needsDestination || this.wantsLog) this.destinationProperty.read(DESTINATION_ADDRESS, facts.destination);
    else facts.destination.valid = false;
    facts.serverName = settings.needsServerName || this.wantsLog ? asciiLower(getPropertyString(SERVER_NAME)) : "";
    for (let i = 0; i < this.valuePaths.length; i++) {
      unchecked(facts.valueLengths[i] = getPropertyInto(unchecked(this.valuePaths[i]), unchecked(facts.valueBytes[i])));
    }
    decide(this.policy, facts, this.decision);
    if (this.logLevel <= LogLevel.Trace) this.traceEarlierRules();
  }

  /** At trace level, for `explain`: why each rule before the deciding one did not match. */
  private traceEarlierRules(): void {
    const policy = this.policy;
    const last = this.decision.rule == DEFAULT_RULE ? policy.ruleCount : this.decision.rule;
    for (let r = 0; r < last; r++) {
      log(LogLevel.Trace, msg("wasmerang: rules[") + formatNumber(r) + msg("] ") + policy.ruleName(r) + msg(" no match: ")
        + matcherName(failedMatcher(policy, this.facts, r)));
    }
  }

  private clusterName(): string {
    const slot = this.decision.cluster;
    return slot >= 0 ? this.policy.clusters[slot] : this.decision.dynamicCluster;
  }

  /** Prepares the filter's own PROXY header for a routed connection to one of the configured ports. */
  private prepareHeader(): void {
    const settings = this.policy.settings.proxyHeader;
    const facts = this.facts;
    const destination = facts.destination;
    if (!facts.source.valid || !destination.valid || destination.port < 0) return;
    let listed = false;
    for (let i = 0; i < settings.portLow.length && !listed; i++) {
      listed = destination.port >= settings.portLow[i] && destination.port <= settings.portHigh[i];
    }
    if (!listed) return;
    const rule = this.decision.rule;
    this.pendingHeader = proxyHeader(settings.version, facts.source, destination,
      settings.sendServerName ? facts.serverName : "", settings.sendRule && rule != DEFAULT_RULE ? this.policy.ruleName(rule) : "");
  }

  /** The matched rule's counter, or the unmatched one. */
  private count(): void {
    const rule = this.decision.rule;
    incrementMetric(rule == DEFAULT_RULE ? this.stats.unmatched : unchecked(this.ruleCounters[rule]), 1);
  }

  private applyToRequest(): void {
    const http = this.policy.settings.http;
    const decision = this.decision;
    if (decision.outcome == Outcome.Route) {
      replaceHeader(MapType.HttpRequestHeaders, http.clusterHeader, this.clusterName());
      this.countRouted();
      return;
    }
    removeHeader(MapType.HttpRequestHeaders, http.clusterHeader);
    if (decision.outcome == Outcome.Reject) {
      incrementMetric(this.stats.rejected, 1);
      sendLocalResponse(http.rejectStatus, "wasmerang_rejected", http.rejectBody);
    } else {
      this.unrouted();
    }
  }

  /** Passthrough and errors are counted alike for TCP and HTTP. */
  private unrouted(): void {
    if (this.decision.outcome == Outcome.Passthrough) {
      incrementMetric(this.stats.passthrough, 1);
      return;
    }
    incrementMetric(this.stats.badAddress, 1);
    if (this.logLevel <= LogLevel.Warn) log(LogLevel.Warn, msg("wasmerang: not routed: ") + this.decision.reason);
  }

  /** Carries out the decision; returns set_envoy_filter_state's status (Ok when it was not called). */
  private apply(): WasmResult {
    const decision = this.decision;
    if (decision.outcome == Outcome.Reject) {
      incrementMetric(this.stats.rejected, 1);
      closeStream(StreamType.Downstream);
      return WasmResult.Ok;
    }
    if (decision.outcome != Outcome.Route) {
      this.unrouted();
      return WasmResult.Ok;
    }
    if (decision.originalDestination) {
      // Before the cluster: an ORIGINAL_DST cluster without it would connect to the listener's own address.
      const status = setEnvoyFilterState(encodeFilterState(FILTER_STATE_ORIGINAL_DST_ADDRESS, this.destinationProperty.text));
      if (status != WasmResult.Ok) return this.filterStateFailed(FILTER_STATE_ORIGINAL_DST_ADDRESS, this.destinationProperty.text, status);
    }
    const slot = decision.cluster;
    let encoded: ArrayBuffer;
    if (slot < 0) {
      encoded = encodeFilterState(FILTER_STATE_TCP_PROXY_CLUSTER, decision.dynamicCluster);
    } else {
      const cached = unchecked(this.encodings[slot]);
      if (cached == null) {
        encoded = encodeFilterState(FILTER_STATE_TCP_PROXY_CLUSTER, this.policy.clusters[slot]);
        unchecked(this.encodings[slot] = encoded);
      } else {
        encoded = cached;
      }
    }
    const status = setEnvoyFilterState(encoded);
    if (status != WasmResult.Ok) return this.filterStateFailed(FILTER_STATE_TCP_PROXY_CLUSTER, this.clusterName(), status);
    this.countRouted();
    return WasmResult.Ok;
  }

  private filterStateFailed(key: string, value: string, status: WasmResult): WasmResult {
    incrementMetric(this.stats.filterStateFailed, 1);
    if (this.logLevel <= LogLevel.Error) {
      log(LogLevel.Error, msg("wasmerang: set_envoy_filter_state(") + key + "=" + value + msg(") failed with status ") + formatNumber(status));
    }
    return status;
  }

  /** The routed total, and the cluster's own counter when it has one. */
  private countRouted(): void {
    incrementMetric(this.stats.routed, 1);
    const slot = this.decision.cluster;
    incrementMetric(slot >= 0 ? unchecked(this.clusterCounters[slot]) : this.stats.clusters.id(this.decision.dynamicCluster), 1);
  }

  /** One debug line per decision: the per-connection record is the access log (docs/policy.md). */
  private logDecision(status: WasmResult): void {
    const facts = this.facts;
    const decision = this.decision;
    const rule = decision.rule == DEFAULT_RULE || this.policy.ruleName(decision.rule).length > 0
      ? this.policy.ruleName(decision.rule) : "-";
    log(LogLevel.Debug, msg("wasmerang: source=") + this.sourceProperty.text + msg(" destination=") + this.destinationProperty.text
      + msg(" sni=") + (facts.serverName.length == 0 ? "-" : facts.serverName)
      + (facts.isRequest ? msg(" authority=") + facts.authority + msg(" path=") + facts.path : "")
      + msg(" rule=") + rule + " " + this.outcomeWords(status));
  }

  /** The end of a decision's log line: where the connection or request went, or why not. */
  private outcomeWords(status: WasmResult): string {
    const decision = this.decision;
    if (decision.outcome == Outcome.Reject) return msg("action=reject");
    if (decision.outcome == Outcome.Passthrough) return msg("action=passthrough");
    if (decision.outcome == Outcome.Error) return msg("action=none reason=") + decision.reason;
    if (status != WasmResult.Ok) return msg("action=none reason=filter_state_status_") + formatNumber(status);
    return msg("cluster=") + this.clusterName();
  }
}
