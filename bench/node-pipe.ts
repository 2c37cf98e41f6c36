// The yardstick for the runner's own cost: the least a Node.js TCP relay can do — accept, connect
// to one backend, pipe() both ways with half-close — with no filter, no config, no counters.
// Usage: node-pipe.ts BACKEND_PORT; prints its own port as JSON.
import { connect, createServer, type AddressInfo } from "node:net";

const backendPort = Number(process.argv[2]);
const server = createServer({ allowHalfOpen: true }, (client) => {
  const upstream = connect({ host: "127.0.0.1", port: backendPort, allowHalfOpen: true });
  // Each socket closes itself once both directions have ended (autoDestroy); an error ends both.
  client.pipe(upstream);
  upstream.pipe(client);
  client.on("error", () => upstream.destroy());
  upstream.on("error", () => client.destroy());
});
server.listen(0, "127.0.0.1", () => process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`));
