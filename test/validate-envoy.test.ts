// Envoy's judgement as `wasmerang validate` applies it: YAML read as Envoy's yaml-cpp conversion
// reads it, protobuf's JSON parsing rules as Envoy runs them, and protoc-gen-validate's rules on
// every field. Each case is a small config written for the rule it tests.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseEnvoyYaml, parseEnvoyYamlDocuments } from "../src/envoy/envoy-yaml.js";
import type { Problem } from "../src/envoy/errors.js";
import { checkBootstrap } from "../src/envoy/load.js";

const TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";

function problemsOf(yaml: string): Problem[] {
  return checkBootstrap(parseEnvoyYaml(yaml, "test.yaml")).problems;
}

function errorsOf(yaml: string): string[] {
  return problemsOf(yaml).filter((problem) => problem.severity === "error").map((problem) => `${problem.path}: ${problem.message}`);
}

function warningsOf(yaml: string): string[] {
  return problemsOf(yaml).filter((problem) => problem.severity === "warning").map((problem) => `${problem.path}: ${problem.message}`);
}

/** A listener whose one filter is `filter` (YAML, indented for its place), and one cluster. */
function listenerWith(filter: string, cluster = "  - name: c\n    connect_timeout: 1s\n"): string {
  return `static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}
    filter_chains:
    - filters:
${filter}
  clusters:
${cluster}`;
}

function tcpProxy(fields: string): string {
  return `      - name: tcp
        typed_config:
          "@type": ${TCP_PROXY}
${fields}`;
}

describe("YAML as Envoy reads it (yaml-cpp scalars)", () => {
  it("reads plain scalars as yaml-cpp converts them: its booleans, C++ integers, everything else a string", () => {
    const value = parseEnvoyYaml([
      "a: yes", "b: Off", "c: Y", "d: 0x1F", "e: 017", "f: 08", "g: 1.5", "h: 3000000000", "i: 99999999999999999999",
      "j: ~", "k:", "l: 'yes'", "m: \"12\"", "n: TRUE", "o: tRUE",
    ].join("\n"), "t") as Record<string, unknown>;
    assert.deepEqual(value, {
      a: true, b: false, c: true, d: 31, e: 15, f: "08", g: "1.5", h: "3000000000", i: "99999999999999999999",
      j: null, k: null, l: "yes", m: "12", n: true, o: "tRUE",
    });
  });

  it("keeps keys as their text, and resolves anchors, aliases and merge keys", () => {
    const value = parseEnvoyYaml("base: &b {y: 1, n: 2}\ncopy:\n  <<: *b\n  n: 3\nalias: *b\n", "t");
    assert.deepEqual(value, { base: { y: 1, n: 2 }, copy: { n: 3, y: 1 }, alias: { y: 1, n: 2 } });
  });

  it("skips entries whose key is tagged !ignore, as Envoy does", () => {
    assert.deepEqual(parseEnvoyYaml("!ignore anchors: &port 10000\nport: *port\n", "t"), { port: 10000 });
  });

  it("refuses a second document in a bootstrap, naming its line", () => {
    assert.throws(() => parseEnvoyYaml("admin: {}\n---\nadmin: {}\n", "t.yaml"), /t\.yaml: line 3: a second YAML document/);
    assert.equal(parseEnvoyYamlDocuments("a: 1\n---\nb: 2\n", "t").length, 2);
  });

  it("reports a syntax error with its line", () => {
    assert.throws(() => parseEnvoyYaml("a: [1, 2\n", "t.yaml"), /t\.yaml: .*line 2, column 1/);
  });
});

describe("protobuf's JSON parsing as Envoy runs it", () => {
  it("parses enums case-insensitively and normalizes them", () => {
    const { normalized, problems } = checkBootstrap(parseEnvoyYaml(listenerWith(tcpProxy("          stat_prefix: s\n          cluster: c"),
      "  - name: c\n    connect_timeout: 1s\n    type: strict_dns\n    lb_policy: round_robin\n    dns_lookup_family: v4_only\n"), "t"));
    assert.deepEqual(problems, []);
    const cluster = (normalized as { static_resources: { clusters: Record<string, unknown>[] } }).static_resources.clusters[0]!;
    assert.equal(cluster.type, "STRICT_DNS");
    assert.equal(cluster.lb_policy, "ROUND_ROBIN");
    assert.equal(cluster.dns_lookup_family, "V4_ONLY");
  });

  it("still refuses an enum name that no case matches", () => {
    assert.match(errorsOf(listenerWith(tcpProxy("          stat_prefix: s\n          cluster: c"), "  - name: c\n    connect_timeout: 1s\n    type: strict-dns\n")).join("\n"),
      /static_resources\.clusters\[0\]\.type: expected one of STATIC, STRICT_DNS.*got "strict-dns"/);
  });

  it("takes a single mapping where a list is expected, as one element", () => {
    const yaml = `static_resources:
  listeners:
    name: l
    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}
    filter_chains:
      filters:
        name: tcp
        typed_config: {"@type": "${TCP_PROXY}", stat_prefix: s, cluster: c}
  clusters: {name: c, connect_timeout: 1s}
`;
    const { normalized, problems } = checkBootstrap(parseEnvoyYaml(yaml, "t"));
    assert.deepEqual(problems, []);
    const listeners = (normalized as { static_resources: { listeners: { filter_chains: { filters: unknown[] }[] }[] } }).static_resources.listeners;
    assert.equal(listeners.length, 1);
    assert.equal(listeners[0]!.filter_chains[0]!.filters.length, 1);
  });

  it("reads yaml-cpp booleans and numeric strings by the field's type", () => {
    assert.deepEqual(errorsOf(`static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: "10000"}}
    listener_filters:
    - name: pp
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol
        allow_requests_without_proxy_protocol: yes
    filter_chains:
    - filters:
${tcpProxy("          stat_prefix: s\n          cluster: c")}
  clusters:
  - name: c
    connect_timeout: 1.5s
    per_connection_buffer_limit_bytes: 0x8000
    common_lb_config: {healthy_panic_threshold: {value: 50.5}}
`), []);
  });

  it("refuses a value of the wrong type, naming the field", () => {
    assert.deepEqual(errorsOf(listenerWith(tcpProxy("          stat_prefix: s\n          cluster: c"), "  - name: c\n    connect_timeout: 1s\n    per_connection_buffer_limit_bytes: lots\n")),
      ["static_resources.clusters[0].per_connection_buffer_limit_bytes: expected an integer in 0..4294967295, got string \"lots\""].map((line) => line.replace("an integer in 0..4294967295", "an integer (uint32)")));
  });

  it("refuses unknown fields, with the message they are not in", () => {
    assert.deepEqual(errorsOf(listenerWith(tcpProxy("          stat_prefix: s\n          clustr: c\n          cluster: c"))),
      ["static_resources.listeners[0].filter_chains[0].filters[0].typed_config.clustr: unknown field (not in envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy)"]);
  });

  it("accepts camelCase JSON names as protobuf does", () => {
    assert.deepEqual(errorsOf(listenerWith(tcpProxy("          statPrefix: s\n          cluster: c"), "  - name: c\n    connectTimeout: 1s\n")), []);
  });
});

describe("Any and TypedStruct", () => {
  const withHttpFilter = (filter: string) => listenerWith(`      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: h
          route_config: {virtual_hosts: [{name: v, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: c}}]}]}
          http_filters:
${filter}
          - name: router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}`);

  for (const typedStruct of ["udpa.type.v1.TypedStruct", "xds.type.v3.TypedStruct"]) {
    it(`unwraps ${typedStruct} and checks its value as the message type_url names`, () => {
      const filter = (config: string) => `          - name: wasm
            typed_config:
              "@type": type.googleapis.com/${typedStruct}
              type_url: type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              value:
${config}`;
      assert.deepEqual(errorsOf(withHttpFilter(filter("                config: {vm_config: {runtime: envoy.wasm.runtime.v8, code: {local: {inline_string: x}}}}"))), []);
      assert.deepEqual(errorsOf(withHttpFilter(filter("                config: {vm_config: {runtime: envoy.wasm.runtime.v8, code: {local: {inline_string: x}}}, fail_opn: true}"))),
        ["static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.value.config.fail_opn: unknown field (not in envoy.extensions.wasm.v3.PluginConfig)"]);
    });
  }

  it("resolves only fully qualified type names", () => {
    assert.deepEqual(errorsOf(withHttpFilter("          - name: r\n            typed_config: {\"@type\": type.googleapis.com/Router}")),
      ["static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type: 'Router' is not a fully qualified message name (such as envoy.extensions.filters.http.router.v3.Router)"]);
  });

  it("refuses Envoy v2 API types, which Envoy no longer reads", () => {
    assert.match(errorsOf(withHttpFilter("          - name: r\n            typed_config: {\"@type\": type.googleapis.com/envoy.config.filter.http.router.v2.Router}")).join("\n"),
      /@type: 'envoy\.config\.filter\.http\.router\.v2\.Router' is an Envoy v2 API type, removed from Envoy/);
  });

  it("warns, without refusing, about a type the shipped API does not have", () => {
    const yaml = withHttpFilter("          - name: new\n            typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.future.v3.Future, anything: 1}");
    assert.deepEqual(errorsOf(yaml), []);
    assert.match(warningsOf(yaml).join("\n"), /@type: type 'envoy\.extensions\.filters\.http\.future\.v3\.Future' is not in the Envoy API shipped with this validator \(about v1\.31: contrib or newer\)/);
  });

  it("loads any shipped message on demand (TLS, HTTP protocol options, Lua)", () => {
    assert.deepEqual(errorsOf(withHttpFilter(`          - name: lua
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
              default_source_code: {inline_string: "function envoy_on_request(h) end"}`).replace("  - name: c\n    connect_timeout: 1s\n", `  - name: c
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    transport_socket:
      name: tls
      typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, sni: example.com}
`)), []);
  });
});

describe("protoc-gen-validate's rules, on every field", () => {
  const at = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";

  it("string min_len applies to a field left out (a missing stat_prefix)", () => {
    assert.deepEqual(errorsOf(listenerWith(tcpProxy("          cluster: c"))), [`${at}.stat_prefix: must not be empty`]);
  });

  it("a required oneof needs one member (tcp_proxy without cluster or weighted_clusters)", () => {
    assert.deepEqual(errorsOf(listenerWith(tcpProxy("          stat_prefix: s"))), [`${at}.cluster_specifier: one of cluster, weighted_clusters, on_demand? is required`]
      .map((line) => line.replace(", on_demand?", "")));
  });

  it("two members of one oneof are refused", () => {
    assert.match(errorsOf(listenerWith(tcpProxy("          stat_prefix: s\n          cluster: c\n          weighted_clusters: {clusters: [{name: c, weight: 1}]}"))).join("\n"),
      /weighted_clusters: only one of oneof 'cluster_specifier' may be set \(also set: cluster\)/);
  });

  it("wrapper rules apply to the wrapped value when it is set (max_connect_attempts >= 1)", () => {
    assert.deepEqual(errorsOf(listenerWith(tcpProxy("          stat_prefix: s\n          cluster: c\n          max_connect_attempts: 0"))),
      [`${at}.max_connect_attempts: must be >= 1, got 0`]);
    assert.deepEqual(errorsOf(listenerWith(tcpProxy("          stat_prefix: s\n          cluster: c\n          max_connect_attempts: 2"))), []);
  });

  it("Duration rules (connect_timeout > 0s)", () => {
    assert.deepEqual(errorsOf(listenerWith(tcpProxy("          stat_prefix: s\n          cluster: c"), "  - name: c\n    connect_timeout: 0s\n")),
      ["static_resources.clusters[0].connect_timeout: must be > 0s, got 0s"]);
    assert.match(errorsOf(listenerWith(tcpProxy("          stat_prefix: s\n          cluster: c"), "  - name: c\n    connect_timeout: 5\n")).join("\n"),
      /connect_timeout: expected a duration such as "5s"/);
  });

  it("a required Duration left out (a health check without timeout or interval)", () => {
    const cluster = "  - name: c\n    connect_timeout: 1s\n    health_checks:\n    - tcp_health_check: {}\n      unhealthy_threshold: 1\n      healthy_threshold: 1\n";
    assert.deepEqual(errorsOf(listenerWith(tcpProxy("          stat_prefix: s\n          cluster: c"), cluster)),
      ["static_resources.clusters[0].health_checks[0].timeout: is required", "static_resources.clusters[0].health_checks[0].interval: is required"]);
  });

  it("a required message left out (a listener filter chain's filter without a name is fine; an address without socket address is not)", () => {
    const yaml = listenerWith(tcpProxy("          stat_prefix: s\n          cluster: c")).replace("address: {socket_address: {address: 127.0.0.1, port_value: 10000}}", "address: {socket_address: {port_value: 10000}}");
    assert.deepEqual(errorsOf(yaml), ["static_resources.listeners[0].address.socket_address.address: must not be empty"]);
  });

  it("integer ranges, defined enums, list sizes and header names", () => {
    const yaml = listenerWith(tcpProxy("          stat_prefix: s\n          weighted_clusters: {clusters: []}"),
      "  - name: c\n    connect_timeout: 1s\n    lb_policy: 42\n    load_assignment: {cluster_name: c, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 70000}}}}]}]}\n")
      .replace("    filter_chains:", "    listener_filters_timeout: 1s\n    filter_chains:");
    assert.deepEqual(errorsOf(yaml), [
      `${at}.weighted_clusters.clusters: needs at least one item`,
      "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: must be <= 65535, got 70000",
      "static_resources.clusters[0].lb_policy: 42 is not a value of LbPolicy",
    ]);
  });

  it("a header name with a character HTTP does not allow", () => {
    const route = `      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: h
          route_config: {virtual_hosts: [{name: v, domains: ["*"], routes: [{match: {prefix: /, headers: [{name: "bad\\nheader", present_match: true}]}, route: {cluster: c}}]}]}
          http_filters: [{name: router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]`;
    assert.deepEqual(errorsOf(listenerWith(route)),
      [`${at}.route_config.virtual_hosts[0].routes[0].match.headers[0].name: is not a valid HTTP header name: "bad\\nheader"`]);
  });

  it("warns about deprecated fields, as Envoy does, without refusing them", () => {
    const yaml = listenerWith(tcpProxy("          stat_prefix: s\n          cluster: c"), "  - name: c\n    connect_timeout: 1s\n    http2_protocol_options: {}\n");
    assert.deepEqual(errorsOf(yaml), []);
    assert.match(warningsOf(yaml).join("\n"), /static_resources\.clusters\[0\]\.http2_protocol_options: deprecated in Envoy's API/);
  });
});
