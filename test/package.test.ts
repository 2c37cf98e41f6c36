// Packaging for Istio: an OCI image in the Wasm artifact format, pushed to a real registry
// (Debian's docker-registry, on loopback) with Debian's skopeo, pulled back, digests compared.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import { packageFilter, WASM_LAYER_MEDIA_TYPE } from "../src/package/oci.js";
import { FILTER_WASM } from "./helpers.js";
import { freePort } from "./net-helpers.js";
import { commandWorks, needPeer } from "./peers.js";

const dir = mkdtempSync(join(tmpdir(), "wasmerang-oci-"));
const wasmCopy = join(dir, "wasmerang.wasm");
writeFileSync(wasmCopy, readFileSync(FILTER_WASM));
let registry: ChildProcess | undefined;
after(() => registry?.kill("SIGKILL"));

const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

it("writes an OCI image layout whose blobs match their digests, and the module's sha256", async () => {
  const image = await packageFilter(wasmCopy, join(dir, "oci"), "0.1.0");
  const index = JSON.parse(readFileSync(join(dir, "oci", "index.json"), "utf8")) as { manifests: { digest: string; annotations: Record<string, string> }[] };
  assert.equal(index.manifests[0]!.digest, image.manifestDigest);
  assert.equal(index.manifests[0]!.annotations["org.opencontainers.image.ref.name"], "0.1.0");
  const blob = (digest: string) => readFileSync(join(dir, "oci", "blobs", "sha256", digest.slice(7)));
  const manifestBytes = blob(image.manifestDigest);
  assert.equal(`sha256:${sha256(manifestBytes)}`, image.manifestDigest);
  const manifest = JSON.parse(manifestBytes.toString()) as { layers: { mediaType: string; digest: string }[] };
  assert.equal(manifest.layers.length, 1);
  assert.equal(manifest.layers[0]!.mediaType, WASM_LAYER_MEDIA_TYPE);
  assert.deepEqual(blob(manifest.layers[0]!.digest), readFileSync(FILTER_WASM));
  assert.equal(readFileSync(`${wasmCopy}.sha256`, "utf8").trim(), sha256(readFileSync(FILTER_WASM)));
  assert.equal(image.wasmSha256, sha256(readFileSync(FILTER_WASM)));
});

it("pushes to a local registry with skopeo and pulls back the same digests", async (t) => {
  const present = commandWorks("skopeo", ["--version"]) && commandWorks("docker-registry", ["--version"]);
  if (!needPeer(t, "skopeo and docker-registry", present, "apt-get install skopeo docker-registry")) return;
  const image = await packageFilter(wasmCopy, join(dir, "push"), "0.1.0");
  const port = await freePort();
  const config = join(dir, "registry.yml");
  writeFileSync(config, `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, "registry")}\nhttp:\n  addr: 127.0.0.1:${port}\n`);
  registry = spawn("docker-registry", ["serve", config], { stdio: "ignore" });
  for (let i = 0; i < 100; i++) {
    if (await fetch(`http://127.0.0.1:${port}/v2/`).then((r) => r.ok, () => false)) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const reference = `docker://127.0.0.1:${port}/wasmerang:0.1.0`;
  const skopeo = (...args: string[]) => {
    const result = spawnSync("skopeo", args, { encoding: "utf8" });
    assert.equal(result.status, 0, `skopeo ${args.join(" ")}: ${result.stderr}`);
    return result.stdout;
  };
  skopeo("copy", "--dest-tls-verify=false", `oci:${image.directory}:0.1.0`, reference);
  const remoteManifest = skopeo("inspect", "--tls-verify=false", "--raw", reference);
  assert.equal(`sha256:${sha256(Buffer.from(remoteManifest))}`, image.manifestDigest);
  skopeo("copy", "--src-tls-verify=false", reference, `oci:${join(dir, "pulled")}:0.1.0`);
  const pulled = JSON.parse(readFileSync(join(dir, "pulled", "index.json"), "utf8")) as { manifests: { digest: string }[] };
  assert.equal(pulled.manifests[0]!.digest, image.manifestDigest);
  assert.deepEqual(readFileSync(join(dir, "pulled", "blobs", "sha256", image.wasmSha256)), readFileSync(FILTER_WASM));
});
