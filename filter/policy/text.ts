// Byte-level text helpers. Addresses and numbers are read from bytes (what the host hands in),
// so the data path builds no strings; configuration text is copied into bytes to share them.

/** Value of an ASCII digit in the given radix (up to 16), or -1. */
export function digitValue(c: i32, radix: i32): i32 {
  let v = -1;
  if (c >= 48 && c <= 57) v = c - 48;
  else if (c >= 97 && c <= 102) v = c - 87;
  else if (c >= 65 && c <= 70) v = c - 55;
  return v < radix ? v : -1;
}

/**
 * ASCII lower case. Server names are ASCII on the wire (IDNs travel as punycode), and String's
 * own toLowerCase would pull ~10 KB of Unicode tables into the module.
 */
export function asciiLower(text: string): string {
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c >= 65 && c <= 90) break;
    i++;
  }
  if (i == text.length) return text;
  const out = new Array<i32>(text.length);
  for (let k = 0; k < text.length; k++) {
    const c = text.charCodeAt(k);
    out[k] = c >= 65 && c <= 90 ? c + 32 : c;
  }
  return String.fromCharCodes(out);
}

/** Copies ASCII `text` into `into`; its length, or -1 when it does not fit or is not ASCII. */
export function asciiBytes(text: string, into: StaticArray<u8>): i32 {
  if (text.length > into.length) return -1;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 127) return -1;
    unchecked(into[i] = <u8>c);
  }
  return text.length;
}

/** The first `c` in bytes[from, end), or -1. */
export function indexOfByte(bytes: StaticArray<u8>, c: u8, from: i32, end: i32): i32 {
  for (let i = from; i < end; i++) if (unchecked(bytes[i]) == c) return i;
  return -1;
}

/** An unsigned number of at most maxDigits digits spanning bytes[start, end) exactly; -1 if invalid. */
export function parseNumber(bytes: StaticArray<u8>, start: i32, end: i32, radix: i32, maxDigits: i32): i64 {
  if (end <= start || end - start > maxDigits) return -1;
  let value: i64 = 0;
  for (let i = start; i < end; i++) {
    const d = digitValue(unchecked(bytes[i]), radix);
    if (d < 0) return -1;
    value = value * radix + d;
  }
  return value;
}

/** The space-separated words of `text`: a list of names kept as one message-table entry is decoded once. */
export function words(text: string): string[] {
  const out = new Array<string>();
  let from = 0;
  for (let i = 0; i <= text.length; i++) {
    if (i < text.length && text.charCodeAt(i) != 32) continue;
    out.push(text.substring(from, i));
    from = i + 1;
  }
  return out;
}
