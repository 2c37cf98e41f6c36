// The optional native addons in native/ (built by node-gyp during `npm install`). Each caller
// works without its addon and says what is lost; nothing here may make the runner fail to load.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

/** Loads native/build/Release/<name>.node from the source tree (tsx) or the build tree. */
export function loadNativeAddon<T>(name: string): T | undefined {
  for (const root of ["../../../native", "../../native"]) {
    try {
      return require(`${root}/build/Release/${name}.node`) as T;
    } catch {
      // Try the next layout.
    }
  }
  return undefined;
}
