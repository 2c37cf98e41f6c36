// The original destination of a connection redirected by iptables/nftables (SO_ORIGINAL_DST), as
// Envoy's original_dst listener filter reads it. Node has no API for that socket option; the
// optional native addon in native/ provides it. Without a redirect (or without the addon) the
// local address is the destination, which is also what Envoy falls back to.
import type { Socket } from "node:net";
import type { Endpoint } from "../host/properties.js";
import { loadNativeAddon } from "../native/addon.js";

interface OriginalDstAddon {
  originalDestination(fd: number): { address: string; port: number } | null;
}

const addon = loadNativeAddon<OriginalDstAddon>();

export const originalDstSupported = addon !== undefined;

export function originalDestination(socket: Socket): Endpoint | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (addon === undefined || fd === undefined || fd < 0) return undefined;
  return addon.originalDestination(fd) ?? undefined;
}
