// Applies the policy to one TCP connection: reads the properties the policy needs, decides, and
// tells Envoy through set_envoy_filter_state. Never traps on what the host returns: a missing or
// garbled property only means fewer facts.
import {
  closeStream, encodeFilterState, FILTER_STATE_TCP_PROXY_CLUSTER, fromUtf8, getProperty, incrementMetric, log, LogLevel,
  propertyPath, setEnvoyFilterState, StreamType, WasmResult,
} from "./sdk";
import { Decision, decide, DEFAULT_RULE, Outcome } from "./policy/decision";
import { parseSocketAddress, SocketAddress } from "./policy/ip";
import { asciiLower } from "./policy/text";
import { ConnectionFacts, Policy } from "./policy/model";
import { FilterStats } from "./stats";

const SOURCE_ADDRESS = propertyPath(["source", "address"]);
const DESTINATION_ADDRESS = propertyPath(["destination", "address"]);
const SERVER_NAME = propertyPath(["connection", "requested_server_name"]);

/** Encoded filter-state arguments kept per cluster name, so the data path rarely encodes. */
const MAX_CACHED_CLUSTERS = 1024;

function readString(path: ArrayBuffer): string {
  const bytes = getProperty(path);
  return bytes == null ? "" : fromUtf8(bytes);
}

export class Router {
  private readonly encoded: Map<string, ArrayBuffer> = new Map();

  constructor(readonly policy: Policy, readonly stats: FilterStats, readonly logLevel: i32) {}

  /** Decides for the current connection; returns false when the connection was closed. */
  routeConnection(): bool {
    const wantsLog = this.logLevel <= LogLevel.Info;
    const sourceText = readString(SOURCE_ADDRESS);
    const source = parseSocketAddress(sourceText);
    const destinationText = this.policy.needsDestination || wantsLog ? readString(DESTINATION_ADDRESS) : "";
    const destination: SocketAddress | null = destinationText.length == 0 ? null : parseSocketAddress(destinationText);
    const serverName = this.policy.needsServerName || wantsLog ? asciiLower(readString(SERVER_NAME)) : "";
    const decision = decide(this.policy, new ConnectionFacts(source, destination, serverName));
    if (decision.rule == DEFAULT_RULE) incrementMetric(this.stats.unmatched, 1);
    else this.stats.countRule(decision.rule);
    const outcome = this.apply(decision);
    if (wantsLog) {
      log(LogLevel.Info, "wasmerang: source=" + sourceText + " destination=" + (destinationText.length == 0 ? "-" : destinationText)
        + " sni=" + (serverName.length == 0 ? "-" : serverName) + " rule=" + (decision.rule.length == 0 ? "-" : decision.rule)
        + " " + outcome);
    }
    return decision.outcome != Outcome.Reject;
  }

  /** Carries out the decision; returns the words the log line ends with. */
  private apply(decision: Decision): string {
    if (decision.outcome == Outcome.Reject) {
      incrementMetric(this.stats.rejected, 1);
      closeStream(StreamType.Downstream);
      return "action=reject";
    }
    if (decision.outcome == Outcome.Passthrough) {
      incrementMetric(this.stats.passthrough, 1);
      return "action=passthrough";
    }
    if (decision.outcome == Outcome.Error) {
      incrementMetric(this.stats.badAddress, 1);
      if (this.logLevel <= LogLevel.Warn) log(LogLevel.Warn, "wasmerang: not routed: " + decision.reason);
      return "action=none reason=" + decision.reason;
    }
    const status = setEnvoyFilterState(this.argumentsFor(decision.cluster));
    if (status != WasmResult.Ok) {
      incrementMetric(this.stats.filterStateFailed, 1);
      if (this.logLevel <= LogLevel.Error) {
        log(LogLevel.Error, "wasmerang: set_envoy_filter_state(" + FILTER_STATE_TCP_PROXY_CLUSTER + "=" + decision.cluster
          + ") failed with status " + status.toString());
      }
      return "action=none reason=filter_state_status_" + status.toString();
    }
    this.stats.countCluster(decision.cluster);
    return "cluster=" + decision.cluster;
  }

  private argumentsFor(cluster: string): ArrayBuffer {
    if (this.encoded.has(cluster)) return this.encoded.get(cluster);
    const args = encodeFilterState(FILTER_STATE_TCP_PROXY_CLUSTER, cluster);
    if (this.encoded.size < MAX_CACHED_CLUSTERS) this.encoded.set(cluster, args);
    return args;
  }
}
