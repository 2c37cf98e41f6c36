// The AssemblyScript SDK as installed packages import it: `import { ... } from "wasmerang/sdk"`.
// The sources live in filter/sdk/, which the project's own filter uses.
export * from "../filter/sdk/index";
