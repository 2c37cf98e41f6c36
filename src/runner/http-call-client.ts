// proxy_http_call's requests, sent to a host of the named cluster over HTTP/1.1 (a fresh
// connection each: calls are rare next to the traffic they decide on). The answer's headers start
// with :status, as Envoy presents them; an error or the call's timeout rejects, which the host
// turns into the empty answer Envoy gives a failed call.
import { request as httpRequest } from "node:http";
import type { HttpCaller, HttpCallResponse } from "../host/http-call.js";
import type { Cluster } from "./cluster.js";

export function clusterHttpCaller(clusterNamed: (name: string) => Cluster | undefined): HttpCaller {
  return (call, signal) => {
    const cluster = clusterNamed(call.cluster);
    if (cluster === undefined) return undefined;
    return new Promise<HttpCallResponse>((resolve, reject) => {
      const host = cluster.pickHost(undefined);
      if (host === undefined) return reject(new Error(`cluster '${call.cluster}' has no host`));
      const header = (name: string) => call.headers.find(([key]) => key === name)?.[1];
      const headers: [string, string][] = [["host", header(":authority")!]];
      for (const [name, value] of call.headers) if (!name.startsWith(":")) headers.push([name, value]);
      const request = httpRequest({ host: host.address, port: host.port, method: header(":method"), path: header(":path"), headers: headers.flat(),
        signal, timeout: call.timeoutMs > 0 ? call.timeoutMs : undefined, agent: false });
      request.on("timeout", () => request.destroy(new Error("http call timed out")));
      request.on("error", reject);
      request.on("response", (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("error", reject);
        response.on("end", () => resolve({
          headers: [[":status", String(response.statusCode ?? 0)], ...pairs(response.rawHeaders)],
          body: Buffer.concat(chunks),
          trailers: pairs(response.rawTrailers),
        }));
      });
      request.end(call.body);
    });
  };
}

function pairs(raw: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i]!.toLowerCase(), raw[i + 1]!]);
  return out;
}
