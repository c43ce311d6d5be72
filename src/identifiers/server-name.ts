/**
 * Server names (Matrix spec appendices, "Server Name"):
 * `hostname [":" port]`, hostname = IPv4 | "[" IPv6 "]" | DNS name.
 * Used to validate `server_name` in the config and every server name that
 * arrives in a request before it is used for anything.
 */

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const IPV6_LITERAL = /^\[[0-9A-Fa-f:.]{2,45}\]$/;
const DNS_NAME = /^[A-Za-z0-9\-.]{1,255}$/;
const PORT = /^\d{1,5}$/;

/** True when `value` is a syntactically valid Matrix server name. */
export function isValidServerName(value: string): boolean {
  if (value.length === 0 || value.length > 255 + 6) return false;
  let host = value;
  const portSep = value.lastIndexOf(":");
  // A colon after the closing bracket of an IPv6 literal, or any colon in a
  // non-bracketed name, separates the port.
  if (portSep !== -1 && (value.startsWith("[") ? value.endsWith("]") === false : true)) {
    const port = value.slice(portSep + 1);
    if (!PORT.test(port)) return false;
    host = value.slice(0, portSep);
  }
  if (host.startsWith("[")) return IPV6_LITERAL.test(host);
  const v4 = IPV4.exec(host);
  if (v4) return v4.slice(1).every((octet) => Number(octet) <= 255);
  return DNS_NAME.test(host);
}
