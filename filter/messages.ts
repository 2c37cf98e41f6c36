// Text the filter needs only while it is configured, when it reports a fault, or in its debug
// and trace lines: the policy's field names, error messages, metric names, the reference cluster
// names, log line words. The filter's build stores every `msg("…")` literal once, as UTF-8, in one
// table and turns the call into `msg<u32>(entry)` (scripts/build-filter.mjs says why); built by
// plain asc, `msg("…")` is the literal itself. Pass only string literals, and never where a
// routed connection must not allocate: each call makes a new string (a line built only when its
// level is on allocates anyway).
import { MESSAGE_TABLE } from "./message-table";

/** The text: the literal itself, or a table entry (offset << 8 | length) decoded anew. */
export function msg<T>(text: T): string {
  if (isString<T>()) return changetype<string>(text);
  const entry = <u32>text;
  return String.UTF8.decodeUnsafe(MESSAGE_TABLE + (entry >>> 8), entry & 0xff);
}
