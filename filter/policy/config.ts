// Turns the plugin configuration into a Policy, once, at configure time. Accepts the reference
// strings (`standalone`, empty, anything containing `istio`) and the JSON policy documented in
// docs/policy.md and schema/policy.schema.json. Every error names the field at fault.
import { parseCidr, Cidr } from "./ip";
import { msg } from "../messages";
import { JsonKind, JsonParser, JsonValue } from "./json";
import { asciiBytes, asciiLower, indexOfByte, parseNumber } from "./text";
import {
  ActionKind, ClusterTemplate, NO_CIDRS, NO_NAMES, Parity, Placeholder, Policy, PortRange, Rule, RuleAction, ValueMatch, ValueMatcher,
  WeightedCluster,
} from "./model";

export class PolicyResult {
  constructor(public readonly policy: Policy | null, public readonly error: string) {}
}

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "critical"];

/** Well-known protocols where the server sends the first bytes (FTP, SSH, SMTP, POP3, IMAP, MySQL). */
const SERVER_SPEAKS_FIRST: i32[] = [21, 22, 25, 110, 143, 587, 3306];

function referencePolicy(istio: bool): Policy {
  const policy = new Policy();
  policy.defaultAction = referenceAction(istio);
  policy.needsDestination = istio;
  return policy;
}

function referenceAction(istio: bool): RuleAction {
  const action = new RuleAction();
  action.kind = ActionKind.Reference;
  action.istio = istio;
  return action;
}

export function parsePolicy(configuration: string): PolicyResult {
  const text = configuration.trim();
  if (text.startsWith("{")) return new PolicyReader().read(text);
  if (text.length == 0 || text == "standalone") return new PolicyResult(referencePolicy(false), "");
  if (text.includes("istio")) return new PolicyResult(referencePolicy(true), "");
  return new PolicyResult(null, msg("configuration: expected 'standalone', 'istio' or a JSON policy object, got '") + text + "'");
}

/** A port range's text, copied to bytes to be read by the same number parser as addresses. */
const rangeBytes = new StaticArray<u8>(16);

function isText(value: JsonValue): bool {
  return value.kind == JsonKind.String && value.text.length > 0;
}

function itemPath(path: string, index: i32): string {
  return path + "[" + index.toString() + "]";
}

/**
 * The path of member `key` of the object at `path` (top-level members go by their name alone;
 * with no key, `path` itself). Readers take (path, key) and build this only to report a fault: a
 * 10,000-rule policy would otherwise make a string per rule and field, and the module would hold
 * each field name twice.
 */
function memberPath(path: string, key: string): string {
  if (key.length == 0) return path;
  return path.length == 0 ? key : path + "." + key;
}

/** The path of the top level, or the key of a value that is not a member (a list item). */
const NO_KEY = "";
/** What list() gives for an absent member or one that is not a list. */
const NO_VALUES = new JsonValue();
const POLICY_FIELDS = ["mode", "log_level", "record_decision", "rules", "default", "http", "proxy_protocol"];
const PROXY_PROTOCOL_FIELDS = ["version", "destination_ports", "tlvs"];
const HTTP_FIELDS = ["cluster_header", "reject_status", "reject_body"];
const RULE_FIELDS = ["name", "match", "action"];
const MATCH_FIELDS = ["source_cidrs", "source_parity", "destination_cidrs", "destination_ports", "server_names",
  "authorities", "path_prefixes", "headers", "metadata", "filter_state"];
const HEADER_FIELDS = ["name", "value"];
const METADATA_FIELDS = ["namespace", "key", "exact", "prefix", "values"];
const FILTER_STATE_FIELDS = ["key", "exact", "prefix", "values"];
const ACTION_FIELDS = ["cluster", "hash", "reject", "passthrough", "reference", "original_dst"];
const HASH_TARGET_FIELDS = ["cluster", "weight"];

class PolicyReader {
  private error: string = "";

  read(text: string): PolicyResult {
    const parser = new JsonParser(text);
    const root = parser.parse();
    if (root == null) {
      parser.release();
      return new PolicyResult(null, msg("configuration: ") + parser.error);
    }
    const policy = this.policy(root);
    parser.release();
    return new PolicyResult(this.error.length > 0 ? null : policy, this.error);
  }

  private fail(path: string, message: string): void {
    if (this.error.length == 0) this.error = path + ": " + message;
  }

  private expectKeys(value: JsonValue, path: string, allowed: string[]): bool {
    if (value.kind != JsonKind.Object) {
      this.fail(path, msg("must be an object"));
      return false;
    }
    for (let i = 0; i < value.count; i++) {
      if (!allowed.includes(value.name(i))) {
        this.fail(path + "." + value.name(i), msg("unknown field (expected one of ") + allowed.join(", ") + ")");
        return false;
      }
    }
    return true;
  }

  private string(value: JsonValue, path: string): string {
    if (!isText(value)) this.fail(path, msg("must be a non-empty string"));
    return value.text;
  }

  /** Member `key` of the object at `path` as a non-empty string. */
  private memberString(value: JsonValue, path: string, key: string): string {
    return isText(value) ? value.text : this.string(value, memberPath(path, key));
  }

  /** Item `index` of the list `key` of the object at `path` as a string. */
  private item(items: JsonValue, index: i32, path: string, key: string): string {
    const value = items.item(index);
    return isText(value) ? value.text : this.string(value, itemPath(memberPath(path, key), index));
  }

  /** Member `key` of `parent` (the object at `path`) as a list; none when absent. */
  private list(parent: JsonValue, path: string, key: string): JsonValue {
    const value = parent.get(key);
    if (value == null) return NO_VALUES;
    if (value.kind == JsonKind.Array) return value;
    this.fail(memberPath(path, key), msg("must be a list"));
    return NO_VALUES;
  }

  private policy(root: JsonValue): Policy {
    const policy = new Policy();
    if (!this.expectKeys(root, msg("configuration"), POLICY_FIELDS)) return policy;
    const proxyProtocol = root.get("proxy_protocol");
    if (proxyProtocol != null) this.proxyHeader(proxyProtocol, policy);
    const http = root.get("http");
    if (http != null) this.http(http, policy);
    let istio = false;
    const mode = root.get("mode");
    if (mode != null) {
      const name = this.string(mode, "mode");
      if (name != "standalone" && name != "istio") this.fail("mode", msg("must be 'standalone' or 'istio', got '") + name + "'");
      istio = name == "istio";
    }
    const level = root.get("log_level");
    if (level != null) {
      policy.logLevel = LOG_LEVELS.indexOf(this.string(level, "log_level"));
      if (policy.logLevel < 0) this.fail("log_level", msg("must be one of ") + LOG_LEVELS.join(", "));
    }
    const record = root.get("record_decision");
    if (record != null) {
      if (record.kind != JsonKind.Bool) this.fail("record_decision", msg("must be true or false"));
      policy.recordDecision = record.bool;
    }
    const rules = this.list(root, NO_KEY, "rules");
    for (let i = 0; i < rules.count; i++) policy.rules.push(this.rule(rules.item(i), itemPath("rules", i), policy));
    const fallback = root.get("default");
    policy.defaultAction = fallback == null ? referenceAction(istio) : this.action(fallback, "default", istio);
    this.summarizeNeeds(policy);
    return policy;
  }

  private summarizeNeeds(policy: Policy): void {
    const actions: RuleAction[] = [policy.defaultAction];
    for (let i = 0; i < policy.rules.length; i++) {
      const rule = policy.rules[i];
      actions.push(rule.action);
      if (rule.destinationCidrs.length > 0 || rule.destinationPorts.length > 0) policy.needsDestination = true;
      if (rule.serverNames.length > 0) policy.needsServerName = true;
    }
    for (let i = 0; i < actions.length; i++) {
      const action = actions[i];
      if (action.kind == ActionKind.Reference && action.istio) policy.needsDestination = true;
      for (let k = 0; k < action.clusters.length; k++) {
        if (action.clusters[k].cluster.usesDestination) policy.needsDestination = true;
      }
    }
  }

  private proxyHeader(value: JsonValue, policy: Policy): void {
    const path = "proxy_protocol";
    if (!this.expectKeys(value, path, PROXY_PROTOCOL_FIELDS)) return;
    const settings = policy.proxyHeader;
    const version = value.get("version");
    if (version == null || version.kind != JsonKind.Number || (version.number != 1 && version.number != 2)) {
      this.fail(memberPath(path, "version"), msg("must be 1 or 2"));
      return;
    }
    settings.version = <i32>version.number;
    const ports = this.list(value, path, "destination_ports");
    if (ports.count == 0) {
      this.fail(memberPath(path, "destination_ports"), msg("is required: the header goes only to ports whose clients speak first"));
    }
    for (let i = 0; i < ports.count; i++) {
      const range = this.portRange(ports.item(i), path, "destination_ports", i);
      for (let k = 0; k < SERVER_SPEAKS_FIRST.length; k++) {
        const port = SERVER_SPEAKS_FIRST[k];
        if (port >= range.low && port <= range.high) {
          this.fail(itemPath(memberPath(path, "destination_ports"), i), msg("includes port ") + port.toString()
            + msg(", where the server speaks first: the filter can add a header only to bytes the client sends"));
        }
      }
      settings.ports.push(range);
    }
    const tlvs = this.list(value, path, "tlvs");
    for (let i = 0; i < tlvs.count; i++) {
      const name = this.item(tlvs, i, path, "tlvs");
      if (name == "authority") settings.sendServerName = true;
      else if (name == "rule") settings.sendRule = true;
      else this.fail(itemPath(memberPath(path, "tlvs"), i), msg("must be 'authority' (the SNI) or 'rule'"));
    }
    if (tlvs.count > 0 && settings.version == 1) this.fail(memberPath(path, "tlvs"), msg("PROXY protocol v1 cannot carry TLVs; use version 2"));
    policy.needsDestination = true;
    if (settings.sendServerName) policy.needsServerName = true;
  }

  private http(value: JsonValue, policy: Policy): void {
    const path = "http";
    if (!this.expectKeys(value, path, HTTP_FIELDS)) return;
    const header = value.get("cluster_header");
    if (header != null) policy.http.clusterHeader = asciiLower(this.memberString(header, path, "cluster_header"));
    const status = value.get("reject_status");
    if (status != null) {
      if (status.kind != JsonKind.Number || status.number < 200 || status.number > 599) {
        this.fail(memberPath(path, "reject_status"), msg("must be an HTTP status from 200 to 599"));
      }
      policy.http.rejectStatus = <u32>status.number;
    }
    const body = value.get("reject_body");
    if (body != null) policy.http.rejectBody = this.text(body, path, "reject_body");
  }

  private rule(value: JsonValue, path: string, policy: Policy): Rule {
    const rule = new Rule();
    if (!this.expectKeys(value, path, RULE_FIELDS)) return rule;
    const name = value.get("name");
    if (name != null) rule.name = this.memberString(name, path, "name");
    const match = value.get("match");
    if (match != null) this.match(match, memberPath(path, "match"), rule, policy);
    const action = value.get("action");
    if (action == null) this.fail(memberPath(path, "action"), msg("is required"));
    else rule.action = this.action(action, memberPath(path, "action"), false);
    if (rule.action.kind == ActionKind.OriginalDst && rule.destinationCidrs.length == 0) {
      this.fail(memberPath(path, "action.original_dst"),
        msg("needs the rule to match destination_cidrs: only destinations the rule allows may be reached directly"));
    }
    return rule;
  }

  /** Member `key` of the object at `path` as a list of strings; the shared empty one when it has none. */
  private strings(parent: JsonValue, path: string, key: string): string[] {
    const items = this.list(parent, path, key);
    if (items.count == 0) return NO_NAMES;
    const out: string[] = new Array<string>();
    for (let i = 0; i < items.count; i++) out.push(this.item(items, i, path, key));
    return out;
  }

  /** Server names or authorities: lower case, `*.suffix` kept as `.suffix`. */
  private names(parent: JsonValue, path: string, key: string): string[] {
    const out = this.strings(parent, path, key);
    for (let i = 0; i < out.length; i++) {
      const name = asciiLower(out[i]);
      out[i] = name.startsWith("*.") ? name.substring(1) : name;
    }
    return out;
  }

  private match(value: JsonValue, path: string, rule: Rule, policy: Policy): void {
    if (!this.expectKeys(value, path, MATCH_FIELDS)) return;
    rule.sourceCidrs = this.cidrs(value, path, "source_cidrs");
    rule.destinationCidrs = this.cidrs(value, path, "destination_cidrs");
    const parity = value.get("source_parity");
    if (parity != null) {
      const text = this.memberString(parity, path, "source_parity");
      if (text == "even") rule.sourceParity = Parity.Even;
      else if (text == "odd") rule.sourceParity = Parity.Odd;
      else this.fail(memberPath(path, "source_parity"), msg("must be 'even' or 'odd', got '") + text + "'");
    }
    const ports = this.list(value, path, "destination_ports");
    if (ports.count > 0) {
      const ranges: PortRange[] = new Array<PortRange>();
      for (let i = 0; i < ports.count; i++) ranges.push(this.portRange(ports.item(i), path, "destination_ports", i));
      rule.destinationPorts = ranges;
    }
    rule.serverNames = this.names(value, path, "server_names");
    rule.authorities = this.names(value, path, "authorities");
    rule.pathPrefixes = this.strings(value, path, "path_prefixes");
    const headers = this.list(value, path, "headers");
    if (headers.count > 0) this.headers(headers, memberPath(path, "headers"), rule, policy);
    if (value.get("metadata") != null || value.get("filter_state") != null) {
      const matchers: ValueMatcher[] = new Array<ValueMatcher>();
      this.valueMatchers(value, path, "metadata", matchers, policy);
      this.valueMatchers(value, path, "filter_state", matchers, policy);
      rule.valueMatchers = matchers;
    }
  }

  private headers(headers: JsonValue, path: string, rule: Rule, policy: Policy): void {
    const indexes: i32[] = new Array<i32>();
    const values: string[] = new Array<string>();
    for (let i = 0; i < headers.count; i++) {
      const headerPath = itemPath(path, i);
      if (!this.expectKeys(headers.item(i), headerPath, HEADER_FIELDS)) return;
      const nameValue = headers.item(i).get("name");
      const exact = headers.item(i).get("value");
      if (nameValue == null || exact == null) {
        this.fail(headerPath, msg("needs name and value"));
        return;
      }
      const name = asciiLower(this.memberString(nameValue, headerPath, "name"));
      let index = policy.headerNames.indexOf(name);
      if (index < 0) {
        index = policy.headerNames.length;
        policy.headerNames.push(name);
      }
      indexes.push(index);
      values.push(this.text(exact, headerPath, "value"));
    }
    rule.headerIndexes = indexes;
    rule.headerValues = values;
  }

  /**
   * `metadata: [{namespace, key, exact | prefix | values}]` reads dynamic metadata (as Envoy's
   * proxy_protocol listener filter writes TLVs into it); `filter_state: [{key, ...}]` a filter
   * state object. Each becomes a property path the router reads once per connection.
   */
  private valueMatchers(parent: JsonValue, parentPath: string, field: string, into: ValueMatcher[], policy: Policy): void {
    const items = this.list(parent, parentPath, field);
    const path = memberPath(parentPath, field);
    const metadata = field == "metadata";
    const keys = metadata ? METADATA_FIELDS : FILTER_STATE_FIELDS;
    for (let i = 0; i < items.count; i++) {
      const at = itemPath(path, i);
      const item = items.item(i);
      if (!this.expectKeys(item, at, keys)) return;
      const key = item.get("key");
      const namespace = item.get("namespace");
      if (key == null || (metadata && namespace == null)) {
        this.fail(at, metadata ? msg("needs namespace and key") : msg("needs key"));
        return;
      }
      const segments = metadata ? "metadata\0filter_metadata\0" + this.memberString(namespace!, at, "namespace") + "\0" : "filter_state\0";
      const propertyPath = segments + this.memberString(key, at, "key");
      let index = policy.valuePaths.indexOf(propertyPath);
      if (index < 0) {
        index = policy.valuePaths.length;
        policy.valuePaths.push(propertyPath);
      }
      const operands: string[] = new Array<string>();
      let kind = ValueMatch.OneOf;
      let ways = 0;
      const exact = item.get("exact");
      if (exact != null) {
        ways++;
        operands.push(this.text(exact, at, "exact"));
      }
      const prefix = item.get("prefix");
      if (prefix != null) {
        ways++;
        kind = ValueMatch.Prefix;
        operands.push(this.text(prefix, at, "prefix"));
      }
      if (item.get("values") != null) {
        ways++;
        const list = this.list(item, at, "values");
        if (list.count == 0) this.fail(memberPath(at, "values"), msg("needs at least one value"));
        for (let k = 0; k < list.count; k++) operands.push(this.text(list.item(k), itemPath(memberPath(at, "values"), k), NO_KEY));
      }
      if (ways != 1) this.fail(at, msg("needs exactly one of exact, prefix, values"));
      into.push(new ValueMatcher(index, kind, operands));
    }
  }

  /** Member `key` of the object at `path` as a string, possibly empty. */
  private text(value: JsonValue, path: string, key: string): string {
    if (value.kind != JsonKind.String) this.fail(memberPath(path, key), msg("must be a string"));
    return value.text;
  }

  private cidrs(parent: JsonValue, path: string, key: string): Cidr[] {
    const items = this.list(parent, path, key);
    if (items.count == 0) return NO_CIDRS;
    const out: Cidr[] = new Array<Cidr>();
    for (let i = 0; i < items.count; i++) {
      const cidr = parseCidr(this.item(items, i, path, key));
      if (cidr == null) this.fail(itemPath(memberPath(path, key), i), msg("invalid CIDR '") + items.item(i).text + "'");
      else out.push(cidr);
    }
    return out;
  }

  /** A port; `at` builds its path, only to report a fault. */
  private port(value: f64, at: PortPath): i32 {
    if (value != Math.floor(value) || value < 1 || value > 65535) this.fail(at.text(), msg("port must be a whole number from 1 to 65535"));
    return <i32>value;
  }

  /** Item `index` of the list `key` of the object at `path`: a port or a range 'LOW-HIGH'. */
  private portRange(value: JsonValue, path: string, key: string, index: i32): PortRange {
    const at = new PortPath(path, key, index);
    if (value.kind == JsonKind.Number) {
      const port = this.port(value.number, at);
      return new PortRange(port, port);
    }
    const text = isText(value) ? value.text : this.string(value, at.text());
    const length = asciiBytes(text, rangeBytes);
    const dash = length < 0 ? -1 : indexOfByte(rangeBytes, 45, 0, length);
    if (dash < 0) {
      this.fail(at.text(), msg("must be a port number or a range 'LOW-HIGH'"));
      return new PortRange(0, 0);
    }
    const low = this.port(<f64>parseNumber(rangeBytes, 0, dash, 10, 5), at);
    const high = this.port(<f64>parseNumber(rangeBytes, dash + 1, length, 10, 5), at);
    if (low > high) this.fail(at.text(), msg("range '") + text + msg("' has its low end above its high end"));
    return new PortRange(low, high);
  }

  private action(value: JsonValue, path: string, istio: bool): RuleAction {
    const action = new RuleAction();
    if (!this.expectKeys(value, path, ACTION_FIELDS)) return action;
    if (value.count != 1) {
      this.fail(path, msg("must have exactly one of cluster, hash, reject, passthrough, reference, original_dst"));
      return action;
    }
    const kind = value.name(0);
    const body = value.item(0);
    if (kind == "cluster") {
      action.kind = ActionKind.Route;
      action.clusters.push(new WeightedCluster(this.template(body, path, kind), 1));
      action.totalWeight = 1;
    } else if (kind == "hash") {
      action.kind = ActionKind.Route;
      this.hashTargets(value, path, action);
    } else if (kind == "original_dst") {
      action.kind = ActionKind.OriginalDst;
      action.clusters.push(new WeightedCluster(new ClusterTemplate([this.memberString(body, path, kind)], [Placeholder.None]), 1));
      action.totalWeight = 1;
      if (path == "default") {
        this.fail(memberPath(path, kind), msg("is for rules only: a rule's destination_cidrs say which destinations may be reached directly"));
      }
    } else if (kind == "reference") {
      const mode = this.memberString(body, path, kind);
      if (mode != "standalone" && mode != "istio") this.fail(memberPath(path, kind), msg("must be 'standalone' or 'istio'"));
      return referenceAction(mode == "istio");
    } else {
      if (body.kind != JsonKind.Bool || !body.bool) this.fail(memberPath(path, kind), msg("must be true"));
      action.kind = kind == "reject" ? ActionKind.Reject : ActionKind.Passthrough;
    }
    return action;
  }

  private hashTargets(parent: JsonValue, parentPath: string, action: RuleAction): void {
    const items = this.list(parent, parentPath, "hash");
    const path = memberPath(parentPath, "hash");
    if (items.count == 0) this.fail(path, msg("needs at least one cluster"));
    for (let i = 0; i < items.count; i++) {
      const item = items.item(i);
      if (item.kind == JsonKind.String) {
        action.clusters.push(new WeightedCluster(this.template(item, itemPath(path, i), NO_KEY), 1));
        action.totalWeight += 1;
        continue;
      }
      const targetPath = itemPath(path, i);
      if (!this.expectKeys(item, targetPath, HASH_TARGET_FIELDS)) return;
      const cluster = item.get("cluster");
      const weight = item.get("weight");
      if (cluster == null) {
        this.fail(memberPath(targetPath, "cluster"), msg("is required"));
        return;
      }
      let points: u32 = 1;
      if (weight != null) {
        const w = weight.number;
        if (weight.kind != JsonKind.Number || w != Math.floor(w) || w < 1 || w > 10000) {
          this.fail(memberPath(targetPath, "weight"), msg("must be a whole number from 1 to 10000"));
          return;
        }
        points = <u32>w;
      }
      action.clusters.push(new WeightedCluster(this.template(cluster, targetPath, "cluster"), points));
      action.totalWeight += points;
    }
  }

  /** Member `key` of the object at `path` (or, with no key, the value at `path`) as a cluster name. */
  private template(value: JsonValue, path: string, key: string): ClusterTemplate {
    const text = this.memberString(value, path, key);
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

/** Where a port or port range sits, spelled only when a fault is reported. */
class PortPath {
  constructor(readonly path: string, readonly key: string, readonly index: i32) {}

  text(): string {
    return itemPath(memberPath(this.path, this.key), this.index);
  }
}
