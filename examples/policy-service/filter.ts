// A network filter that asks a policy service where each connection goes: it holds the new
// connection, sends GET /decide?source=IP:PORT to the bootstrap's cluster `policy`, and routes to
// the cluster named in the answer's body, or closes the connection when the answer is `reject`,
// not a 200, or missing (the call failed or timed out). Build it with
//   npx asc examples/policy-service/filter.ts -o dist/policy-service.wasm --target release
import {
  Action, BufferType, closeStream, continueStream, encodeFilterState, FILTER_STATE_TCP_PROXY_CLUSTER, fromUtf8, getBufferBytes,
  getHeader, getPropertyString, httpCall, log, LogLevel, MapType, propertyPath, registerRootContext, RootContext,
  setEnvoyFilterState, StreamContext, StreamType, WasmResult,
} from "../../filter/sdk";

export * from "../../filter/sdk/exports";

const SOURCE_ADDRESS = propertyPath(["source", "address"]);
const POLICY_CLUSTER = "policy";
const TIMEOUT_MILLISECONDS: u32 = 2000;

class AskPolicy extends StreamContext {
  private waiting: bool = false;

  onNewConnection(): Action {
    const source = getPropertyString(SOURCE_ADDRESS);
    const call = httpCall(POLICY_CLUSTER, [":method", "GET", ":path", "/decide?source=" + source, ":authority", POLICY_CLUSTER], "", TIMEOUT_MILLISECONDS);
    if (call.status != WasmResult.Ok) {
      log(LogLevel.Error, "policy-service: cannot call cluster '" + POLICY_CLUSTER + "' (status " + call.status.toString() + ")");
      closeStream(StreamType.Downstream);
      return Action.Pause;
    }
    this.waiting = true;
    return Action.Pause;
  }

  // Data reaches a filter that paused its new connection (as in Envoy): hold it until the answer.
  onDownstreamData(size: u32, endOfStream: bool): Action {
    return this.waiting ? Action.Pause : Action.Continue;
  }

  onHttpCallResponse(token: u32, headerCount: u32, bodySize: u32, trailerCount: u32): void {
    this.waiting = false;
    let status = "none";
    if (headerCount > 0) {
      const header = getHeader(MapType.HttpCallResponseHeaders, ":status");
      if (header != null) status = header;
    }
    let cluster = "";
    if (bodySize > 0) {
      const body = getBufferBytes(BufferType.HttpCallResponseBody, 0, bodySize);
      if (body != null) cluster = fromUtf8(body).trim();
    }
    if (status != "200" || cluster == "" || cluster == "reject") {
      log(LogLevel.Info, "policy-service: closing (status " + status + ", answer '" + cluster + "')");
      closeStream(StreamType.Downstream);
      return;
    }
    setEnvoyFilterState(encodeFilterState(FILTER_STATE_TCP_PROXY_CLUSTER, cluster));
    continueStream(StreamType.Downstream);
  }
}

class AskPolicyRoot extends RootContext {
  newStreamContext(id: u32): StreamContext | null {
    return new AskPolicy(id, this);
  }
}

registerRootContext((id: u32): RootContext => new AskPolicyRoot(id));
