// The egress router's audit record: one line per client connection, whatever its end (forwarded,
// denied, bad or late header, failed connect, over the limit), as text or JSON lines. Every field
// a peer supplied (TLV values) is escaped, so that no header can forge a line or a field.
import { formatEndpoint, type Endpoint } from "../host/properties.js";
import { TLV, type Tlv } from "./proxy-protocol.js";
import { LineLog } from "../server/log-file.js";

export type AccessLogFormat = "text" | "json";

export type Decision = "forwarded" | "denied" | "bad_header" | "header_timeout" | "local_command" | "over_limit" | "connect_fail" | "connect_timeout";

export interface EgressRecord {
  start: Date;
  client: string;
  source?: Endpoint;
  destination?: Endpoint;
  tlvs: readonly Tlv[];
  decision: Decision;
  /** Why it was not forwarded (absent when forwarded). */
  reason?: string;
  bytesUp: number;
  bytesDown: number;
  durationMs: number;
}

/** Bytes as text with everything outside printable ASCII (and the backslash) as \xNN. */
export function escapeBytes(value: Buffer): string {
  let out = "";
  for (const byte of value) out += byte > 0x20 && byte < 0x7f && byte !== 0x5c && byte !== 0x22 ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, "0")}`;
  return out;
}

const endpoint = (value: Endpoint | undefined): string => (value === undefined ? "-" : formatEndpoint(value));

/** TLVs by name where the protocol or Wasmerang names them, else by type. */
function tlvName(type: number): string {
  return type === TLV.AUTHORITY ? "authority" : type === TLV.WASMERANG_RULE ? "rule" : type === TLV.ALPN ? "alpn" : `tlv_0x${type.toString(16).padStart(2, "0")}`;
}

function text(record: EgressRecord): string {
  const tlvs = record.tlvs.map((tlv) => ` ${tlvName(tlv.type)}=${escapeBytes(tlv.value)}`).join("");
  // A reason may quote peer bytes: as a JSON string it stays one field on one line.
  const reason = record.reason === undefined ? "" : ` reason=${JSON.stringify(record.reason)}`;
  return `${record.start.toISOString()} ${record.client} ${endpoint(record.source)} -> ${endpoint(record.destination)}${tlvs} ` +
    `up=${record.bytesUp} down=${record.bytesDown} ${record.durationMs}ms ${record.decision}${reason}\n`;
}

function json(record: EgressRecord): string {
  return `${JSON.stringify({
    start_time: record.start.toISOString(), client: record.client, source: endpoint(record.source), destination: endpoint(record.destination),
    tlvs: Object.fromEntries(record.tlvs.map((tlv) => [tlvName(tlv.type), escapeBytes(tlv.value)])),
    decision: record.decision, reason: record.reason, bytes_up: record.bytesUp, bytes_down: record.bytesDown, duration_ms: record.durationMs,
  })}\n`;
}

export type EgressAccessLog = LineLog<EgressRecord>;

/** Opens the file (or stdout for "-"); throws, naming the path, when it cannot be opened. */
export async function openEgressAccessLog(path: string, format: AccessLogFormat, onWriteError: (error: Error) => void): Promise<EgressAccessLog> {
  try {
    return await LineLog.open(path, format === "json" ? json : text, onWriteError);
  } catch (error) {
    throw new Error(`access_log: ${(error as Error).message}`);
  }
}
