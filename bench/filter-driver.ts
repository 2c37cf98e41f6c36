// Drives N connections through a module in the in-process host, and nothing else: the program
// bench/instructions.ts runs under callgrind. Usage: filter-driver.ts MODULE CONFIGURATION N
import { FilterHarness } from "../src/host/harness.js";
import { connectMany, sourceAddresses } from "./connections.js";

const [module, configuration, count] = process.argv.slice(2);
const harness = await FilterHarness.load({ module: module!, configuration: configuration ?? "", logLevel: "warn" });
connectMany(harness, sourceAddresses(4096), Number(count), module!);
harness.close();
