// Number formatting for log lines, messages and names built by filters. Pure: no host calls.

/**
 * `value` in decimal, or in lower-case hex with radix 16. The standard library's toString carries
 * every radix from 2 to 36 and its range check: 0.7 KB of the module for what this does.
 */
export function formatNumber(value: u32, radix: u32 = 10): string {
  let length = 1;
  for (let rest = value / radix; rest > 0; rest /= radix) length++;
  const codes = new Array<i32>(length);
  for (let i = length - 1; i >= 0; i--) {
    const digit = value % radix;
    codes[i] = digit < 10 ? 48 + digit : 87 + digit;
    value /= radix;
  }
  return String.fromCharCodes(codes);
}
