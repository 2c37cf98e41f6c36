import { FilterHarness } from "../src/host/harness.js";
import { connectMany, sourceAddresses } from "./connections.js";
const harness = await FilterHarness.load({ module: process.argv[2]!, configuration: '{"log_level":"warn"}', logLevel: "warn" });
const a = sourceAddresses(4096);
connectMany(harness, a, 20000, "x");
const t = process.hrtime.bigint();
connectMany(harness, a, 400000, "x");
console.log(Number(process.hrtime.bigint() - t) / 400000, "ns/conn");
