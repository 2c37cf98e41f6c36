// Wasmerang's entry: wires the SDK's contexts to the policy. The same module serves
// envoy.filters.network.wasm (a stream context per TCP connection) and envoy.filters.http.wasm
// (an HTTP context per request).
import { msg } from "./messages";
import {
  Action, BufferType, formatNumber, hostLogLevel, HttpContext, log, LogLevel, registerRootContext, RootContext, setBufferBytes, StreamContext,
} from "./sdk";
import { CompiledPolicy } from "./policy/compiled";
import { parsePolicy } from "./policy/config";
import { ActionKind } from "./policy/model";
import { words } from "./policy/text";
import { Router } from "./router";
import { FilterStats } from "./stats";

// Only the callbacks this filter handles: Envoy (and the runner) skip the ones a module does not
// export. Downstream data is needed only to put the policy's own PROXY header in front.
export {
  proxy_abi_version_0_2_1, proxy_on_memory_allocate, proxy_on_context_create, proxy_on_vm_start, proxy_on_configure,
  proxy_on_new_connection, proxy_on_downstream_data, proxy_on_request_headers, proxy_on_done, proxy_on_delete,
} from "./sdk/exports";

const ACTION_NAMES = words(msg("route reject passthrough reference"));

function describe(policy: CompiledPolicy): string {
  const fallback = policy.defaultAction;
  const kind = policy.actionKind[fallback];
  return msg("rules=") + formatNumber(policy.ruleCount)
    + msg(" default=") + ACTION_NAMES[kind]
    + (kind == ActionKind.Reference ? (policy.actionIstio[fallback] ? msg(" (istio names)") : msg(" (standalone names)")) : "");
}

class WasmerangRoot extends RootContext {
  router: Router | null = null;
  private stats: FilterStats | null = null;
  /** Connection contexts whose connections have ended, handed out again: connections allocate nothing. */
  readonly idleConnections: WasmerangConnection[] = new Array<WasmerangConnection>();

  onConfigure(configuration: string): bool {
    const result = parsePolicy(configuration);
    const policy = result.policy;
    if (policy == null) {
      log(LogLevel.Critical, msg("wasmerang: invalid plugin configuration: ") + result.error);
      return false;
    }
    // Metrics are defined once per root context; a reconfiguration keeps the same counters.
    let stats = this.stats;
    if (stats == null) {
      stats = new FilterStats();
      this.stats = stats;
    }
    const hostLevel = <i32>hostLogLevel();
    const level = max(policy.settings.logLevel, hostLevel);
    this.router = new Router(policy, stats, level);
    if (level <= LogLevel.Info) log(LogLevel.Info, msg("wasmerang: configured: ") + describe(policy));
    return true;
  }

  newStreamContext(id: u32): StreamContext | null {
    const idle = this.idleConnections;
    return idle.length > 0 ? idle.pop() : new WasmerangConnection(id, this);
  }

  newHttpContext(id: u32): HttpContext | null {
    return new WasmerangRequest(id, this);
  }
}

class WasmerangRequest extends HttpContext {
  onRequestHeaders(headerCount: u32, endOfStream: bool): Action {
    const router = changetype<WasmerangRoot>(this.root).router;
    if (router == null || router.routeRequest()) return Action.Continue;
    // Rejected: a local response has been sent.
    return Action.Pause;
  }
}

class WasmerangConnection extends StreamContext {
  /** The policy's PROXY header, sent in front of the client's first bytes. */
  private header: ArrayBuffer | null = null;

  onNewConnection(): Action {
    const router = changetype<WasmerangRoot>(this.root).router;
    if (router == null) return Action.Continue;
    const routed = router.routeConnection();
    this.header = router.pendingHeader;
    // Rejected: the connection is being closed; stop the chain so tcp_proxy never connects.
    return routed ? Action.Continue : Action.Pause;
  }

  onDownstreamData(size: u32, endOfStream: bool): Action {
    const header = this.header;
    if (header != null) {
      this.header = null;
      // Start 0, size 0: prepend (Envoy's set_buffer_bytes on a connection buffer).
      setBufferBytes(BufferType.DownstreamData, 0, 0, header);
    }
    return Action.Continue;
  }

  onDelete(): void {
    this.header = null;
    changetype<WasmerangRoot>(this.root).idleConnections.push(this);
  }
}

registerRootContext((id: u32): RootContext => new WasmerangRoot(id));
