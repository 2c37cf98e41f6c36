// The optional native addon in native/ (built by node-gyp during `npm install`). Each caller
// works without it and says what is lost; nothing here may make the runner fail to load.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

/** The addon (native/build/Release/wasmerang_native.node) from the source tree (tsx) or the build tree. */
export function loadNativeAddon<T>(): T | undefined {
  for (const root of ["../../../native", "../../native"]) {
    try {
      return require(`${root}/build/Release/wasmerang_native.node`) as T;
    } catch {
      // Try the next layout.
    }
  }
  return undefined;
}
