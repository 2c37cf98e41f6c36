// Drives N connections through a module in the in-process host, and nothing else: the program
// bench/instructions.ts runs under callgrind. Usage: filter-driver.ts MODULE CONFIGURATION_FILE N
import { readFileSync } from "node:fs";
import { FilterHarness } from "../src/host/harness.js";
import { connectMany, sourceAddresses } from "./connections.js";

const [module, configurationFile, count] = process.argv.slice(2);
const harness = await FilterHarness.load({ module: module!, configuration: readFileSync(configurationFile!, "utf8"), logLevel: "info" });
connectMany(harness, sourceAddresses(4096), Number(count), module!);
harness.close();
