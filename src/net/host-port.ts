/**
 * Splitting `host[:port]` (Matrix server names, `m.server` delegations) into
 * a host and a port, and writing them back into URLs and Host headers.
 */
import { isIPv6 } from "node:net";
import { isValidServerName } from "../identifiers/server-name.js";
import { parseIp } from "./ip-ranges.js";

/** A host (without brackets) and an optional port. */
export interface HostPort {
  readonly host: string;
  readonly port: number | undefined;
  /** 4 or 6 for IP literals, 0 for DNS names. */
  readonly ipFamily: 0 | 4 | 6;
}

/**
 * Parses a server name (`example.org`, `example.org:8448`, `1.2.3.4:80`,
 * `[::1]:8448`). Undefined for anything else, including ports outside
 * 1–65535 and all-numeric names that are not a strict IPv4 address
 * (`01.2.3.4`, `127.1`), which resolvers read in surprising ways.
 */
export function parseHostPort(text: string): HostPort | undefined {
  if (!isValidServerName(text)) return undefined;
  const bracketEnd = text.startsWith("[") ? text.indexOf("]") : -1;
  const portSep = text.indexOf(":", bracketEnd === -1 ? 0 : bracketEnd);
  const hostText = portSep === -1 ? text : text.slice(0, portSep);
  const host = bracketEnd === -1 ? hostText : hostText.slice(1, -1);
  let port: number | undefined;
  if (portSep !== -1) {
    port = Number(text.slice(portSep + 1));
    if (port < 1 || port > 65535) return undefined;
  }
  const ip = parseIp(host);
  if (bracketEnd !== -1) return isIPv6(host) ? { host, port, ipFamily: 6 } : undefined;
  if (ip) return { host, port, ipFamily: 4 };
  if (/^[\d.]+$/.test(host)) return undefined;
  return { host, port, ipFamily: 0 };
}

/** The host as it appears in a URL or Host header: IPv6 in brackets. */
export function formatHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

/** `host` or `host:port` for a Host header (IPv6 bracketed). */
export function formatHostPort(host: string, port: number | undefined): string {
  return port === undefined ? formatHost(host) : `${formatHost(host)}:${port}`;
}
