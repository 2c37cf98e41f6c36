// Applies the policy to one TCP connection or HTTP request: reads the properties (and headers)
// the policy needs, decides, and tells Envoy — through set_envoy_filter_state for tcp_proxy, or
// through the request header the route's cluster_header names. Never traps on what the host
// returns: a missing or garbled property only means fewer facts.
import {
  closeStream, encodeFilterState, FILTER_STATE_TCP_PROXY_CLUSTER, getHeader, getPropertyString, incrementMetric, log, LogLevel,
  MapType, propertyPath, removeHeader, replaceHeader, sendLocalResponse, setEnvoyFilterState, StreamType, WasmResult,
} from "./sdk";
import { Decision, decide, DEFAULT_RULE, Outcome } from "./policy/decision";
import { parseSocketAddress, SocketAddress } from "./policy/ip";
import { asciiLower } from "./policy/text";
import { ConnectionFacts, Policy, RequestFacts } from "./policy/model";
import { FilterStats, MAX_NAMED_COUNTERS, NO_COUNTER } from "./stats";
import { proxyHeader } from "./proxy-header";

const SOURCE_ADDRESS = propertyPath(["source", "address"]);
const DESTINATION_ADDRESS = propertyPath(["destination", "address"]);
const SERVER_NAME = propertyPath(["connection", "requested_server_name"]);

/** Cluster names whose filter-state arguments and counter are kept (as many as have counters). */
const MAX_CACHED_CLUSTERS = MAX_NAMED_COUNTERS;

function header(name: string): string {
  const value = getHeader(MapType.HttpRequestHeaders, name);
  return value == null ? "" : value;
}

export class Router {
  /** Cache slot by cluster name (a Map of u32 like the stats', to share its code). */
  private readonly slots: Map<string, u32> = new Map();
  private readonly encodings: ArrayBuffer[] = [];
  private readonly counters: u32[] = [];
  /** The PROXY header the last routed connection must send first, if the policy asks for one. */
  pendingHeader: ArrayBuffer | null = null;

  constructor(readonly policy: Policy, readonly stats: FilterStats, readonly logLevel: i32) {}

  /** Decides for the current connection; returns false when the connection was closed. */
  routeConnection(): bool {
    this.pendingHeader = null;
    return this.route(null).outcome != Outcome.Reject;
  }

  /** Prepares the filter's own PROXY header for a routed connection to one of the configured ports. */
  private prepareHeader(facts: ConnectionFacts, decision: Decision): void {
    const settings = this.policy.proxyHeader;
    const source = facts.source;
    const destination = facts.destination;
    if (settings.version == 0 || source == null || destination == null || destination.port < 0) return;
    let listed = false;
    for (let i = 0; i < settings.ports.length && !listed; i++) {
      listed = destination.port >= settings.ports[i].low && destination.port <= settings.ports[i].high;
    }
    if (!listed) return;
    this.pendingHeader = proxyHeader(settings.version, source, destination,
      settings.sendServerName ? facts.serverName : "", settings.sendRule ? decision.rule : "");
  }

  /**
   * Decides for the current HTTP request and writes the cluster into the policy's cluster
   * header. A client's own copy of that header is always replaced or removed. Returns false when
   * the request was answered locally (reject).
   */
  routeRequest(): bool {
    const names = this.policy.headerNames;
    const values = new Array<string>(names.length);
    for (let i = 0; i < names.length; i++) values[i] = header(names[i]);
    let authority = asciiLower(header(":authority"));
    const colon = authority.lastIndexOf(":");
    if (colon > authority.lastIndexOf("]")) authority = authority.substring(0, colon);
    return this.route(new RequestFacts(authority, header(":path"), values)).outcome != Outcome.Reject;
  }

  private route(request: RequestFacts | null): Decision {
    const wantsLog = this.logLevel <= LogLevel.Info;
    const sourceText = getPropertyString(SOURCE_ADDRESS);
    const source = parseSocketAddress(sourceText);
    const destinationText = this.policy.needsDestination || wantsLog ? getPropertyString(DESTINATION_ADDRESS) : "";
    const destination: SocketAddress | null = destinationText.length == 0 ? null : parseSocketAddress(destinationText);
    const serverName = this.policy.needsServerName || wantsLog ? asciiLower(getPropertyString(SERVER_NAME)) : "";
    const facts = new ConnectionFacts(source, destination, serverName, request);
    const decision = decide(this.policy, facts);
    if (request == null && decision.outcome == Outcome.Route) this.prepareHeader(facts, decision);
    if (decision.rule == DEFAULT_RULE) incrementMetric(this.stats.unmatched, 1);
    else this.stats.countRule(decision.rule);
    const status = request == null ? this.apply(decision) : this.applyToRequest(decision);
    if (wantsLog) {
      log(LogLevel.Info, "wasmerang: source=" + sourceText + " destination=" + (destinationText.length == 0 ? "-" : destinationText)
        + " sni=" + (serverName.length == 0 ? "-" : serverName)
        + (request == null ? "" : " authority=" + request.authority + " path=" + request.path)
        + " rule=" + (decision.rule.length == 0 ? "-" : decision.rule) + " " + outcomeWords(decision, status));
    }
    return decision;
  }

  private applyToRequest(decision: Decision): WasmResult {
    const http = this.policy.http;
    if (decision.outcome == Outcome.Route) {
      replaceHeader(MapType.HttpRequestHeaders, http.clusterHeader, decision.cluster);
      this.countRouted(this.clusterSlot(decision.cluster));
      return WasmResult.Ok;
    }
    removeHeader(MapType.HttpRequestHeaders, http.clusterHeader);
    if (decision.outcome == Outcome.Reject) {
      incrementMetric(this.stats.rejected, 1);
      sendLocalResponse(http.rejectStatus, "wasmerang_rejected", http.rejectBody);
    } else {
      this.unrouted(decision);
    }
    return WasmResult.Ok;
  }

  /** Passthrough and errors are counted alike for TCP and HTTP. */
  private unrouted(decision: Decision): void {
    if (decision.outcome == Outcome.Passthrough) {
      incrementMetric(this.stats.passthrough, 1);
      return;
    }
    incrementMetric(this.stats.badAddress, 1);
    if (this.logLevel <= LogLevel.Warn) log(LogLevel.Warn, "wasmerang: not routed: " + decision.reason);
  }

  /** Carries out the decision; returns set_envoy_filter_state's status (Ok when it was not called). */
  private apply(decision: Decision): WasmResult {
    if (decision.outcome == Outcome.Reject) {
      incrementMetric(this.stats.rejected, 1);
      closeStream(StreamType.Downstream);
      return WasmResult.Ok;
    }
    if (decision.outcome != Outcome.Route) {
      this.unrouted(decision);
      return WasmResult.Ok;
    }
    const slot = this.clusterSlot(decision.cluster);
    const status = setEnvoyFilterState(slot < 0 ? encodeFilterState(FILTER_STATE_TCP_PROXY_CLUSTER, decision.cluster) : this.encodings[slot]);
    if (status != WasmResult.Ok) {
      incrementMetric(this.stats.filterStateFailed, 1);
      if (this.logLevel <= LogLevel.Error) {
        log(LogLevel.Error, "wasmerang: set_envoy_filter_state(" + FILTER_STATE_TCP_PROXY_CLUSTER + "=" + decision.cluster
          + ") failed with status " + status.toString());
      }
      return status;
    }
    this.countRouted(slot);
    return WasmResult.Ok;
  }

  /** The routed total, and the cluster's own counter when it has one. */
  private countRouted(slot: i32): void {
    incrementMetric(this.stats.routed, 1);
    if (slot >= 0 && this.counters[slot] != NO_COUNTER) incrementMetric(this.counters[slot], 1);
  }

  /**
   * The cache slot of a cluster name: its encoded filter-state arguments (used by TCP only) and
   * its counter, made once, so that routing builds nothing. -1 past MAX_CACHED_CLUSTERS names,
   * which then count only in the total, like names past the counter limit.
   */
  private clusterSlot(cluster: string): i32 {
    if (this.slots.has(cluster)) return <i32>this.slots.get(cluster);
    if (this.encodings.length >= MAX_CACHED_CLUSTERS) return -1;
    const slot = this.encodings.length;
    this.slots.set(cluster, slot);
    this.encodings.push(encodeFilterState(FILTER_STATE_TCP_PROXY_CLUSTER, cluster));
    this.counters.push(this.stats.clusters.id(cluster));
    return slot;
  }
}

/** The end of a decision's log line: where the connection or request went, or why not. */
function outcomeWords(decision: Decision, status: WasmResult): string {
  if (decision.outcome == Outcome.Reject) return "action=reject";
  if (decision.outcome == Outcome.Passthrough) return "action=passthrough";
  if (decision.outcome == Outcome.Error) return "action=none reason=" + decision.reason;
  if (status != WasmResult.Ok) return "action=none reason=filter_state_status_" + status.toString();
  return "cluster=" + decision.cluster;
}
