// Reads the plugin configuration into a compiled policy, once, at configure time: the reference
// strings (`standalone`, empty, anything containing `istio`) or the JSON policy documented in
// docs/policy.md and schema/policy.schema.json. The JSON is read in one pass, in document order,
// straight into the compiled form (a PolicyBuilder): nothing of the document is kept but what the
// policy needs. Every error names the field at fault; the first one found is reported.
import { Cidr, parseCidr } from "./ip";
import { msg } from "../messages";
import { formatNumber } from "../sdk/format";
import { JsonCursor, JsonKind } from "./json";
import { asciiBytes, asciiLower, indexOfByte, parseNumber, words } from "./text";
import { ActionKind, ClusterTemplate, Placeholder, PolicySettings, ValueMatch } from "./model";
import { CompiledPolicy, Matcher, PolicyBuilder } from "./compiled";

export class PolicyResult {
  constructor(public readonly policy: CompiledPolicy | null, public readonly error: string) {}
}

const LOG_LEVELS = words(msg("trace debug info warn error critical"));

/** Well-known protocols where the server sends the first bytes (FTP, SSH, SMTP, POP3, IMAP, MySQL). */
const SERVER_SPEAKS_FIRST: i32[] = [21, 22, 25, 110, 143, 587, 3306];

function referencePolicy(istio: bool): CompiledPolicy {
  const builder = new PolicyBuilder();
  return builder.finish(builder.referenceAction(istio));
}

export function parsePolicy(configuration: string): PolicyResult {
  const text = configuration.trim();
  if (text.startsWith("{")) return new PolicyReader(text).read();
  if (text.length == 0 || text == "standalone") return new PolicyResult(referencePolicy(false), "");
  if (text.includes("istio")) return new PolicyResult(referencePolicy(true), "");
  return new PolicyResult(null, msg("configuration: expected 'standalone', 'istio' or a JSON policy object, got '") + text + "'");
}

/**
 * Every member name the policy has, in one order that lists each object's fields as the schema
 * does (the "unknown field" message lists them in this order).
 */
const enum Field {
  Mode, LogLevel, RecordDecision, Rules, Default, Http, ProxyProtocol,
  Version, SourceCidrs, SourceParity, DestinationCidrs, DestinationPorts, Tlvs, ServerNames, Authorities, PathPrefixes, Headers,
  Metadata, FilterState, ClusterHeader, RejectStatus, RejectBody, Name, Match, Action, Value, Namespace, Key, Exact, Prefix, Values,
  Cluster, Hash, Reject, Passthrough, Reference, OriginalDst, Weight,
}

// By Field (a table entry holds at most 255 bytes).
const FIELD_NAMES = words(msg("mode log_level record_decision rules default http proxy_protocol version source_cidrs source_parity destination_cidrs destination_ports tlvs server_names authorities path_prefixes headers metadata filter_state")
  + " " + msg("cluster_header reject_status reject_body name match action value namespace key exact prefix values cluster hash reject passthrough reference original_dst weight"));

/** A set of fields. */
@inline function bit(field: Field): u64 {
  return (<u64>1) << <u64>field;
}

const POLICY_FIELDS = bit(Field.Mode) | bit(Field.LogLevel) | bit(Field.RecordDecision) | bit(Field.Rules) | bit(Field.Default)
  | bit(Field.Http) | bit(Field.ProxyProtocol);
const PROXY_PROTOCOL_FIELDS = bit(Field.Version) | bit(Field.DestinationPorts) | bit(Field.Tlvs);
const HTTP_FIELDS = bit(Field.ClusterHeader) | bit(Field.RejectStatus) | bit(Field.RejectBody);
const RULE_FIELDS = bit(Field.Name) | bit(Field.Match) | bit(Field.Action);
const MATCH_FIELDS = bit(Field.SourceCidrs) | bit(Field.SourceParity) | bit(Field.DestinationCidrs) | bit(Field.DestinationPorts)
  | bit(Field.ServerNames) | bit(Field.Authorities) | bit(Field.PathPrefixes) | bit(Field.Headers) | bit(Field.Metadata)
  | bit(Field.FilterState);
const HEADER_FIELDS = bit(Field.Name) | bit(Field.Value);
const FILTER_STATE_FIELDS = bit(Field.Key) | bit(Field.Exact) | bit(Field.Prefix) | bit(Field.Values);
const METADATA_FIELDS = bit(Field.Namespace) | FILTER_STATE_FIELDS;
const ACTION_FIELDS = bit(Field.Cluster) | bit(Field.Hash) | bit(Field.Reject) | bit(Field.Passthrough) | bit(Field.Reference)
  | bit(Field.OriginalDst);
const HASH_TARGET_FIELDS = bit(Field.Cluster) | bit(Field.Weight);

/** Configuration text is copied here to be parsed by the same code as the host's bytes. */
const textBytes = new StaticArray<u8>(64);
const cidr = new Cidr();

function itemPath(path: string, index: i32): string {
  return path + "[" + formatNumber(index) + "]";
}

/**
 * The path of member `key` of the object at `path` (top-level members go by their name alone;
 * with no key, `path` itself). Readers take (path, key) and build this only to report a fault: a
 * 10,000-rule policy would otherwise make a string per rule and field.
 */
function memberPath(path: string, key: string): string {
  if (key.length == 0) return path;
  return path.length == 0 ? key : path + "." + key;
}

/** Where `item` is in `list`, appended if it is not there yet (the header names and value paths rules share). */
function indexIn(list: string[], item: string): i32 {
  const index = list.indexOf(item);
  if (index >= 0) return index;
  list.push(item);
  return list.length - 1;
}

/** The path of the top level, or the key of a value that is not a member (a list item). */
const NO_KEY = "";

/**
 * Reads the policy twice only when it is refused: the first pass spells no field's path (a 10,000-
 * rule policy would make a few per rule, all kept until configure returns), the second reads it
 * again spelling them all, to name the field at fault.
 */
class PolicyReader {
  private error: string = "";
  private failed: bool = false;
  /** The second pass: paths are spelled. */
  private diagnose: bool = false;
  private readonly json: JsonCursor;
  private out: PolicyBuilder = new PolicyBuilder();

  constructor(text: string) {
    this.json = new JsonCursor(text, FIELD_NAMES);
  }

  private get settings(): PolicySettings {
    return this.out.out.settings;
  }

  read(): PolicyResult {
    const syntax = this.json.check();
    if (syntax.length > 0) return new PolicyResult(null, msg("configuration: ") + syntax);
    const fallback = this.policy();
    if (!this.failed) return new PolicyResult(this.out.finish(fallback), "");
    this.diagnose = true;
    this.json.rewind();
    this.out = new PolicyBuilder();
    this.policy();
    return new PolicyResult(null, this.error);
  }

  private fail(path: string, message: string): void {
    this.failed = true;
    if (this.diagnose && this.error.length == 0) this.error = path + ": " + message;
    // Only the first fault is reported: read no further (a message would otherwise be made for
    // each fault of a policy that has a million).
    this.json.stop();
  }

  /** itemPath, spelled only in the second pass. */
  private itemAt(path: string, index: i32): string {
    return this.diagnose ? itemPath(path, index) : NO_KEY;
  }

  /** memberPath, spelled only in the second pass. */
  private memberAt(path: string, key: string): string {
    return this.diagnose ? memberPath(path, key) : NO_KEY;
  }

  /** Steps into the object at `path`; false (the value reported and skipped) when it is not one. */
  private object(path: string): bool {
    if (this.json.kind() == JsonKind.Object) {
      this.json.enter();
      return true;
    }
    this.fail(path, msg("must be an object"));
    this.json.skip();
    return false;
  }

  /**
   * The next member of the object at `path`, one of `allowed` and not in `seen` (the fields read
   * so far); -1 after the last. Others are reported and skipped.
   */
  private member(path: string, allowed: u64, seen: u64): i32 {
    const json = this.json;
    while (json.nextMember()) {
      const field = json.field;
      if (field < 0 || (allowed & bit(field)) == 0) {
        const names: string[] = new Array<string>();
        for (let f = 0; f < FIELD_NAMES.length; f++) if ((allowed & bit(f)) != 0) names.push(FIELD_NAMES[f]);
        this.fail((path.length == 0 ? msg("configuration") : path) + "." + json.memberName(),
          msg("unknown field (expected one of ") + names.join(", ") + ")");
      } else if ((seen & bit(field)) != 0) {
        this.fail(memberPath(path, FIELD_NAMES[field]), msg("appears twice"));
      } else {
        return field;
      }
      json.skip();
    }
    return -1;
  }

  /** The value at the cursor if it is a non-empty string; else "" (and the value is skipped). */
  private nonEmpty(): string {
    if (this.json.kind() == JsonKind.String) return this.json.string();
    this.json.skip();
    return "";
  }

  /** Member `key` of the object at `path` (with no key, the value at `path`) as a non-empty string; "" (reported) when it is not one. */
  private memberString(path: string, key: string): string {
    const text = this.nonEmpty();
    if (text.length == 0) this.fail(memberPath(path, key), msg("must be a non-empty string"));
    return text;
  }

  /** Item `index` of the list `key` of the object at `path` as a non-empty string. */
  private item(path: string, key: string, index: i32): string {
    const text = this.nonEmpty();
    if (text.length == 0) this.fail(itemPath(memberPath(path, key), index), msg("must be a non-empty string"));
    return text;
  }

  /** Member `key` of the object at `path` as a string, possibly empty. */
  private text(path: string, key: string): string {
    if (this.json.kind() == JsonKind.String) return this.json.string();
    this.json.skip();
    this.fail(memberPath(path, key), msg("must be a string"));
    return "";
  }

  /** The value at the cursor as a whole number, or NaN (not reported) when it is not a number. */
  private number(): f64 {
    if (this.json.kind() == JsonKind.Number) return this.json.number();
    this.json.skip();
    return NaN;
  }

  /** Steps into member `key` of the object at `path` as a list; false (reported, skipped) when it is not one. */
  private list(path: string, key: string): bool {
    if (this.json.kind() == JsonKind.Array) {
      this.json.enter();
      return true;
    }
    this.fail(memberPath(path, key), msg("must be a list"));
    this.json.skip();
    return false;
  }

  /** The top-level object; returns the default action. */
  private policy(): i32 {
    const out = this.out;
    let istio = false;
    let fallback = -1;
    if (!this.object(msg("configuration"))) return fallback;
    let seen: u64 = 0;
    for (let field = 0; (field = this.member(NO_KEY, POLICY_FIELDS, seen)) >= 0; seen |= bit(field)) {
      const key = FIELD_NAMES[field];
      if (field == Field.Mode) {
        const name = this.memberString(key, NO_KEY);
        if (name != "standalone" && name != "istio") this.fail(key, msg("must be 'standalone' or 'istio', got '") + name + "'");
        istio = name == "istio";
      } else if (field == Field.LogLevel) {
        this.settings.logLevel = LOG_LEVELS.indexOf(this.memberString(key, NO_KEY));
        if (this.settings.logLevel < 0) this.fail(key, msg("must be one of ") + LOG_LEVELS.join(", "));
      } else if (field == Field.RecordDecision) {
        if (this.json.kind() == JsonKind.Bool) this.settings.recordDecision = this.json.bool();
        else {
          this.json.skip();
          this.fail(key, msg("must be true or false"));
        }
      } else if (field == Field.Rules) {
        if (this.list(NO_KEY, key)) {
          for (let i = 0; this.json.nextItem(); i++) this.rule(this.itemAt(key, i));
        }
      } else if (field == Field.Default) {
        fallback = this.action(key, true);
      } else if (field == Field.Http) {
        this.http(key);
      } else {
        this.proxyHeader(key);
      }
    }
    // `mode` names the reference clusters of a policy without a default, wherever it comes.
    return fallback < 0 ? out.referenceAction(istio) : fallback;
  }

  private proxyHeader(path: string): void {
    if (!this.object(path)) return;
    const settings = this.settings.proxyHeader;
    let seen: u64 = 0;
    let tlvs = 0;
    for (let field = 0; (field = this.member(path, PROXY_PROTOCOL_FIELDS, seen)) >= 0; seen |= bit(field)) {
      const key = FIELD_NAMES[field];
      if (field == Field.Version) {
        const version = this.number();
        settings.version = version == 1 || version == 2 ? <i32>version : -1;
      } else if (field == Field.DestinationPorts) {
        if (!this.list(path, key)) continue;
        for (let i = 0; this.json.nextItem(); i++) {
          const range = this.portRange(path, key, i);
          for (let k = 0; k < SERVER_SPEAKS_FIRST.length; k++) {
            const port = SERVER_SPEAKS_FIRST[k];
            if (port >= range.low && port <= range.high) {
              this.fail(itemPath(memberPath(path, key), i), msg("includes port ") + formatNumber(port)
                + msg(", where the server speaks first: the filter can add a header only to bytes the client sends"));
            }
          }
          settings.portLow.push(range.low);
          settings.portHigh.push(range.high);
        }
      } else {
        if (!this.list(path, key)) continue;
        for (; this.json.nextItem(); tlvs++) {
          const name = this.item(path, key, tlvs);
          if (name == "authority") settings.sendServerName = true;
          else if (name == "rule") settings.sendRule = true;
          else this.fail(itemPath(memberPath(path, key), tlvs), msg("must be 'authority' (the SNI) or 'rule'"));
        }
      }
    }
    if (settings.version <= 0) this.fail(memberPath(path, msg("version")), msg("must be 1 or 2"));
    if (settings.portLow.length == 0) {
      this.fail(memberPath(path, msg("destination_ports")), msg("is required: the header goes only to ports whose clients speak first"));
    }
    if (tlvs > 0 && settings.version == 1) this.fail(memberPath(path, msg("tlvs")), msg("PROXY protocol v1 cannot carry TLVs; use version 2"));
    this.settings.needsDestination = true;
    if (settings.sendServerName) this.settings.needsServerName = true;
  }

  private http(path: string): void {
    if (!this.object(path)) return;
    const http = this.settings.http;
    let seen: u64 = 0;
    for (let field = 0; (field = this.member(path, HTTP_FIELDS, seen)) >= 0; seen |= bit(field)) {
      const key = FIELD_NAMES[field];
      if (field == Field.ClusterHeader) {
        http.clusterHeader = asciiLower(this.memberString(path, key));
      } else if (field == Field.RejectStatus) {
        const status = this.number();
        if (!(status >= 200 && status <= 599)) this.fail(memberPath(path, key), msg("must be an HTTP status from 200 to 599"));
        http.rejectStatus = <u32>status;
      } else {
        http.rejectBody = this.text(path, key);
      }
    }
  }

  private rule(path: string): void {
    const out = this.out;
    if (!this.object(path)) return;
    out.beginRule();
    let name = "";
    let action = -1;
    let seen: u64 = 0;
    for (let field = 0; (field = this.member(path, RULE_FIELDS, seen)) >= 0; seen |= bit(field)) {
      const key = FIELD_NAMES[field];
      if (field == Field.Name) name = this.memberString(path, key);
      else if (field == Field.Match) this.match(this.memberAt(path, key));
      else action = this.action(this.memberAt(path, key), false);
    }
    if ((seen & bit(Field.Action)) == 0) {
      this.fail(memberPath(path, msg("action")), msg("is required"));
    } else if (action >= 0 && out.actionKind(action) == ActionKind.OriginalDst && (out.ruleFlags & Matcher.Destination) == 0) {
      this.fail(memberPath(path, msg("action.original_dst")),
        msg("needs the rule to match destination_cidrs: only destinations the rule allows may be reached directly"));
    }
    out.endRule(name, action);
  }

  private match(path: string): void {
    if (!this.object(path)) return;
    const out = this.out;
    let seen: u64 = 0;
    for (let field = 0; (field = this.member(path, MATCH_FIELDS, seen)) >= 0; seen |= bit(field)) {
      const key = FIELD_NAMES[field];
      if (field == Field.SourceCidrs || field == Field.DestinationCidrs) {
        this.cidrs(path, key, field == Field.SourceCidrs ? Matcher.Source : Matcher.Destination);
      } else if (field == Field.SourceParity) {
        const text = this.memberString(path, key);
        if (text == "even" || text == "odd") out.sourceParity(text == "odd");
        else this.fail(memberPath(path, key), msg("must be 'even' or 'odd', got '") + text + "'");
      } else if (field == Field.DestinationPorts) {
        if (!this.list(path, key)) continue;
        for (let i = 0; this.json.nextItem(); i++) {
          const range = this.portRange(path, key, i);
          out.port(range.low, range.high);
        }
      } else if (field == Field.Headers) {
        if (this.list(path, key)) this.headers(this.memberAt(path, key));
      } else if (field == Field.Metadata || field == Field.FilterState) {
        if (this.list(path, key)) this.valueMatchers(this.memberAt(path, key), field == Field.Metadata);
      } else {
        if (!this.list(path, key)) continue;
        for (let i = 0; this.json.nextItem(); i++) {
          const text = this.item(path, key, i);
          if (field == Field.PathPrefixes) {
            out.pathPrefix(text);
            continue;
          }
          // Server names and authorities: lower case, `*.suffix` kept as `.suffix`.
          const lower = asciiLower(text);
          const pattern = lower.startsWith("*.") ? lower.substring(1) : lower;
          if (field == Field.ServerNames) out.serverName(pattern);
          else out.authority(pattern);
        }
      }
    }
  }

  /** The CIDRs of list `key`, the rule's `matcher` (source or destination), read without making a string of each. */
  private cidrs(path: string, key: string, matcher: Matcher): void {
    if (!this.list(path, key)) return;
    for (let i = 0; this.json.nextItem(); i++) {
      let length = this.json.asciiInto(textBytes);
      let text = "";
      if (length < 0) {
        // Empty, escaped, not ASCII, too long or not a string: read it to report it (or undo the escapes).
        text = this.item(path, key, i);
        if (text.length == 0) continue;
        length = asciiBytes(text, textBytes);
      }
      if (length > 0 && parseCidr(textBytes, length, cidr)) {
        this.out.cidr(matcher, cidr);
        continue;
      }
      if (text.length == 0) text = String.UTF8.decodeUnsafe(changetype<usize>(textBytes), <usize>length);
      this.fail(itemPath(memberPath(path, key), i), msg("invalid CIDR '") + text + "'");
    }
  }

  private headers(path: string): void {
    const settings = this.settings;
    for (let i = 0; this.json.nextItem(); i++) {
      const headerPath = this.itemAt(path, i);
      if (!this.object(headerPath)) continue;
      let name = "";
      let value: string | null = null;
      let seen: u64 = 0;
      for (let field = 0; (field = this.member(headerPath, HEADER_FIELDS, seen)) >= 0; seen |= bit(field)) {
        if (field == Field.Name) name = asciiLower(this.memberString(headerPath, FIELD_NAMES[field]));
        else value = this.text(headerPath, FIELD_NAMES[field]);
      }
      if (seen != HEADER_FIELDS) {
        this.fail(headerPath, msg("needs name and value"));
        continue;
      }
      this.out.header(indexIn(settings.headerNames, name), value!);
    }
  }

  /**
   * `metadata: [{namespace, key, exact | prefix | values}]` reads dynamic metadata (as Envoy's
   * proxy_protocol listener filter writes TLVs into it); `filter_state: [{key, ...}]` a filter
   * state object. Each becomes a property path the router reads once per connection.
   */
  private valueMatchers(path: string, metadata: bool): void {
    const allowed = metadata ? METADATA_FIELDS : FILTER_STATE_FIELDS;
    for (let i = 0; this.json.nextItem(); i++) {
      const at = this.itemAt(path, i);
      if (!this.object(at)) continue;
      let namespace = "";
      let key = "";
      const operands: string[] = new Array<string>();
      let kind = ValueMatch.OneOf;
      let seen: u64 = 0;
      for (let field = 0; (field = this.member(at, allowed, seen)) >= 0; seen |= bit(field)) {
        const name = FIELD_NAMES[field];
        if (field == Field.Namespace) namespace = this.memberString(at, name);
        else if (field == Field.Key) key = this.memberString(at, name);
        else if (field == Field.Values) {
          if (!this.list(at, name)) continue;
          for (let k = 0; this.json.nextItem(); k++) operands.push(this.text(this.itemAt(this.memberAt(at, name), k), NO_KEY));
          if (operands.length == 0) this.fail(memberPath(at, name), msg("needs at least one value"));
        } else {
          if (field == Field.Prefix) kind = ValueMatch.Prefix;
          operands.push(this.text(at, name));
        }
      }
      const ways = seen & (bit(Field.Exact) | bit(Field.Prefix) | bit(Field.Values));
      if ((seen & bit(Field.Key)) == 0 || (metadata && (seen & bit(Field.Namespace)) == 0)) {
        this.fail(at, metadata ? msg("needs namespace and key") : msg("needs key"));
      } else if (ways == 0 || (ways & (ways - 1)) != 0) {
        this.fail(at, msg("needs exactly one of exact, prefix, values"));
      }
      const propertyPath = (metadata ? "metadata\0filter_metadata\0" + namespace + "\0" : "filter_state\0") + key;
      this.out.valueMatcher(indexIn(this.settings.valuePaths, propertyPath), kind, operands);
    }
  }

  /** A port; `at` is its path. */
  private port(value: f64, at: string): i32 {
    if (value != Math.floor(value) || value < 1 || value > 65535) this.fail(at, msg("port must be a whole number from 1 to 65535"));
    return <i32>value;
  }

  /** Item `index` of the list `key` of the object at `path`: a port or a range 'LOW-HIGH'. */
  private portRange(path: string, key: string, index: i32): PortRange {
    const at = this.itemAt(this.memberAt(path, key), index);
    if (this.json.kind() == JsonKind.Number) {
      const port = this.port(this.json.number(), at);
      return new PortRange(port, port);
    }
    const text = this.nonEmpty();
    if (text.length == 0) {
      this.fail(at, msg("must be a non-empty string"));
      return new PortRange(0, 0);
    }
    const length = asciiBytes(text, textBytes);
    const dash = length < 0 ? -1 : indexOfByte(textBytes, 45, 0, length);
    if (dash < 0) {
      this.fail(at, msg("must be a port number or a range 'LOW-HIGH'"));
      return new PortRange(0, 0);
    }
    const low = this.port(<f64>parseNumber(textBytes, 0, dash, 10, 5), at);
    const high = this.port(<f64>parseNumber(textBytes, dash + 1, length, 10, 5), at);
    if (low > high) this.fail(at, msg("range '") + text + msg("' has its low end above its high end"));
    return new PortRange(low, high);
  }

  /** The action object at `path` (the policy's default or a rule's): its index, or -1 when it is not an object. */
  private action(path: string, isDefault: bool): i32 {
    if (!this.object(path)) return -1;
    const out = this.out;
    let action = -1;
    let count = 0;
    let seen: u64 = 0;
    for (let field = 0; (field = this.member(path, ACTION_FIELDS, seen)) >= 0; seen |= bit(field)) {
      const kind = FIELD_NAMES[field];
      if (++count > 1) {
        this.fail(path, msg("must have exactly one of cluster, hash, reject, passthrough, reference, original_dst"));
        this.json.skip();
        continue;
      }
      if (field == Field.Cluster) {
        out.beginAction(ActionKind.Route);
        this.target(1, this.memberString(path, kind), path, kind);
      } else if (field == Field.Hash) {
        out.beginAction(ActionKind.Route);
        this.hashTargets(path, kind);
      } else if (field == Field.OriginalDst) {
        out.beginAction(ActionKind.OriginalDst);
        out.staticTarget(1, this.memberString(path, kind));
        if (isDefault) {
          this.fail(memberPath(path, kind), msg("is for rules only: a rule's destination_cidrs say which destinations may be reached directly"));
        }
      } else if (field == Field.Reference) {
        const mode = this.memberString(path, kind);
        if (mode != "standalone" && mode != "istio") this.fail(memberPath(path, kind), msg("must be 'standalone' or 'istio'"));
        action = out.referenceAction(mode == "istio");
        continue;
      } else {
        const isBool = this.json.kind() == JsonKind.Bool;
        if (!isBool) this.json.skip();
        if (!isBool || !this.json.bool()) this.fail(memberPath(path, kind), msg("must be true"));
        out.beginAction(field == Field.Reject ? ActionKind.Reject : ActionKind.Passthrough);
      }
      action = out.endAction();
    }
    if (count == 0) this.fail(path, msg("must have exactly one of cluster, hash, reject, passthrough, reference, original_dst"));
    return action;
  }

  private hashTargets(parentPath: string, key: string): void {
    const path = this.memberAt(parentPath, key);
    if (!this.list(parentPath, key)) return;
    const out = this.out;
    let count = 0;
    for (; this.json.nextItem(); count++) {
      const targetPath = this.itemAt(path, count);
      if (this.json.kind() == JsonKind.String) {
        this.target(1, this.memberString(targetPath, NO_KEY), targetPath, NO_KEY);
        continue;
      }
      if (!this.object(targetPath)) continue;
      let weight: u32 = 1;
      let seen: u64 = 0;
      let cluster: string | null = null;
      for (let field = 0; (field = this.member(targetPath, HASH_TARGET_FIELDS, seen)) >= 0; seen |= bit(field)) {
        if (field == Field.Cluster) {
          cluster = this.memberString(targetPath, FIELD_NAMES[field]);
          continue;
        }
        const w = this.number();
        if (!(w == Math.floor(w) && w >= 1 && w <= 10000)) this.fail(memberPath(targetPath, FIELD_NAMES[field]), msg("must be a whole number from 1 to 10000"));
        else weight = <u32>w;
      }
      if (cluster == null) this.fail(memberPath(targetPath, msg("cluster")), msg("is required"));
      else this.target(weight, cluster, targetPath, msg("cluster"));
    }
    if (count == 0) this.fail(memberPath(parentPath, key), msg("needs at least one cluster"));
  }

  /** `text`, member `key` of the object at `path` (or, with no key, the value at `path`), as one of the action's clusters. */
  private target(weight: u32, text: string, path: string, key: string): void {
    if (text.includes("{")) this.out.templateTarget(weight, this.template(text, path, key));
    else this.out.staticTarget(weight, text);
  }

  /** A cluster name with placeholders, in pieces. */
  private template(text: string, path: string, key: string): ClusterTemplate {
    const pieces: string[] = new Array<string>();
    const placeholders: Placeholder[] = new Array<Placeholder>();
    let at = 0;
    while (at < text.length) {
      const open = text.indexOf("{", at);
      if (open < 0) break;
      const close = text.indexOf("}", open);
      if (close < 0) {
        this.fail(memberPath(path, key), msg("unclosed '{' in cluster name '") + text + "'");
        break;
      }
      const name = text.substring(open + 1, close);
      if (name != "dst_port") this.fail(memberPath(path, key), msg("unknown placeholder '{") + name + msg("}' (supported: {dst_port})"));
      if (open > at) {
        pieces.push(text.substring(at, open));
        placeholders.push(Placeholder.None);
      }
      pieces.push("");
      placeholders.push(Placeholder.DestinationPort);
      at = close + 1;
    }
    if (at < text.length || pieces.length == 0) {
      pieces.push(text.substring(at));
      placeholders.push(Placeholder.None);
    }
    return new ClusterTemplate(pieces, placeholders);
  }
}

class PortRange {
  constructor(readonly low: i32, readonly high: i32) {}
}
