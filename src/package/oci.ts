// Packages the filter as an OCI image in the Wasm artifact format Istio's `oci://` WasmPlugin URLs
// pull (config application/vnd.module.wasm.config.v1+json, one layer
// application/vnd.module.wasm.content.layer.v1+wasm), as an OCI image layout directory that
// `skopeo copy oci:DIR:TAG docker://REGISTRY/NAME:TAG` pushes. Also writes the module's sha256 for
// Envoy's vm_config.code.remote.sha256.
import { createHash } from "node:crypto";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

export const WASM_CONFIG_MEDIA_TYPE = "application/vnd.module.wasm.config.v1+json";
export const WASM_LAYER_MEDIA_TYPE = "application/vnd.module.wasm.content.layer.v1+wasm";
const MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json";

export interface PackagedImage {
  /** The OCI image layout directory. */
  directory: string;
  tag: string;
  manifestDigest: string;
  /** sha256 of the module, hex: the layer digest and Envoy's vm_config.code.remote.sha256. */
  wasmSha256: string;
}

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

async function writeBlob(directory: string, data: Buffer): Promise<{ digest: string; size: number }> {
  const hex = sha256(data);
  await writeFile(join(directory, "blobs", "sha256", hex), data);
  return { digest: `sha256:${hex}`, size: data.length };
}

export async function packageFilter(wasmFile: string, directory: string, tag: string): Promise<PackagedImage> {
  const wasm = await readFile(wasmFile);
  await rm(directory, { recursive: true, force: true });
  await mkdir(join(directory, "blobs", "sha256"), { recursive: true });
  const layer = await writeBlob(directory, wasm);
  // Fixed fields only, so that the same module always gives the same digests.
  const config = await writeBlob(directory, Buffer.from(JSON.stringify({ author: "wasmerang", "abi-version": "v0-2-1", platform: "wasm" })));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MANIFEST_MEDIA_TYPE,
    config: { mediaType: WASM_CONFIG_MEDIA_TYPE, ...config },
    layers: [{ mediaType: WASM_LAYER_MEDIA_TYPE, ...layer, annotations: { "org.opencontainers.image.title": "wasmerang.wasm" } }],
  }));
  const manifestBlob = await writeBlob(directory, manifest);
  await writeFile(join(directory, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeFile(join(directory, "index.json"), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: MANIFEST_MEDIA_TYPE, ...manifestBlob, annotations: { "org.opencontainers.image.ref.name": tag } }],
  }));
  await writeFile(`${wasmFile}.sha256`, `${layer.digest.slice("sha256:".length)}\n`);
  return { directory, tag, manifestDigest: manifestBlob.digest, wasmSha256: layer.digest.slice("sha256:".length) };
}
