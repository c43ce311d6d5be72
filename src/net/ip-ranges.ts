/**
 * IP address and CIDR range parsing and matching, for the outbound address
 * policy (`ip_range_blacklist` / `ip_range_whitelist`, Synapse's names).
 *
 * Design notes:
 * - Addresses are numbers (bigint) with a family, so matching a range is one
 *   mask-and-compare whatever the family.
 * - The grammar is strict on purpose: an IPv4 address is four decimal
 *   octets without leading zeros. `0177.0.0.1`, `0x7f.1`, `127.1` and
 *   `2130706433` are not IP addresses here, although some resolvers read
 *   them as 127.0.0.1: such a string is treated as a host name, goes
 *   through the resolver, and the address it resolves to is what gets
 *   checked.
 * - An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) is the IPv4 address
 *   it maps: a socket connected to it reaches that IPv4 host, so it must
 *   meet the IPv4 rules. Ranges inside `::ffff:0:0/96` are likewise read as
 *   IPv4 ranges.
 * - The unspecified addresses (`0.0.0.0/8`, `::`) are always refused, even
 *   when whitelisted: connecting to them reaches the local host. Synapse
 *   always blocks `0.0.0.0` and `::`; we block all of 0.0.0.0/8 ("this
 *   network", RFC 1122), which no remote server can use.
 */

/** A parsed IP address. IPv4-mapped IPv6 addresses are parsed as IPv4. */
export interface IpAddress {
  readonly family: 4 | 6;
  readonly value: bigint;
}

/** A CIDR range: every address of `family` whose first `prefix` bits equal `network`'s. */
export interface IpRange {
  readonly family: 4 | 6;
  readonly network: bigint;
  readonly prefix: number;
}

/** The blacklist and whitelist an outbound address must pass; the whitelist wins. */
export interface AddressPolicy {
  readonly blacklist: readonly IpRange[];
  readonly whitelist: readonly IpRange[];
}

/**
 * Synapse's default `ip_range_blacklist` (its config documentation): private,
 * loopback, link-local, CGNAT, documentation, benchmarking, multicast and
 * other special-purpose ranges.
 */
export const SYNAPSE_DEFAULT_IP_RANGE_BLACKLIST: readonly string[] = Object.freeze([
  "127.0.0.0/8",
  "10.0.0.0/8",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "100.64.0.0/10",
  "192.0.0.0/24",
  "169.254.0.0/16",
  "192.88.99.0/24",
  "198.18.0.0/15",
  "192.0.2.0/24",
  "198.51.100.0/24",
  "203.0.113.0/24",
  "224.0.0.0/4",
  "::1/128",
  "fe80::/10",
  "fc00::/7",
  "2001:db8::/32",
  "ff00::/8",
  "fec0::/10",
]);

const BITS = { 4: 32, 6: 128 } as const;
const OCTET = /^(0|[1-9]\d{0,2})$/;
const HEX_GROUP = /^[0-9a-f]{1,4}$/i;

/** Parses a strict IPv4 or IPv6 address (no brackets; an IPv6 zone id is ignored). */
export function parseIp(text: string): IpAddress | undefined {
  const v4 = parseIpv4(text);
  if (v4 !== undefined) return { family: 4, value: v4 };
  const v6 = parseIpv6(text);
  if (v6 === undefined) return undefined;
  if (v6 >> 32n === 0xffffn) return { family: 4, value: v6 & 0xffff_ffffn };
  return { family: 6, value: v6 };
}

/** True when `text` is an IP address literal in the strict grammar of `parseIp`. */
export function isIpLiteral(text: string): boolean {
  return parseIp(text) !== undefined;
}

/**
 * Parses `address/prefix`, or a bare address (a one-address range). Host bits
 * set below the prefix are ignored (`10.1.2.3/8` is `10.0.0.0/8`), as in
 * Synapse's netaddr sets. Undefined when the text is not a range.
 */
export function parseCidr(text: string): IpRange | undefined {
  const slash = text.indexOf("/");
  const addressText = slash === -1 ? text : text.slice(0, slash);
  if (addressText.includes("%")) return undefined;
  const v6 = parseIpv6(addressText);
  const v4 = v6 === undefined ? parseIpv4(addressText) : undefined;
  if (v4 === undefined && v6 === undefined) return undefined;
  const family = v4 === undefined ? 6 : 4;
  let prefix: number = BITS[family];
  if (slash !== -1) {
    const prefixText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > BITS[family]) return undefined;
    prefix = Number(prefixText);
  }
  const value = v4 ?? v6!;
  // A range inside ::ffff:0:0/96 is an IPv4 range (see the design notes).
  if (family === 6 && prefix >= 96 && value >> 32n === 0xffffn) {
    return makeRange(4, value & 0xffff_ffffn, prefix - 96);
  }
  return makeRange(family, value, prefix);
}

/** Parses a list of ranges; throws a RangeError naming the first invalid entry. */
export function parseIpRanges(texts: readonly string[]): IpRange[] {
  return texts.map((text) => {
    const range = parseCidr(text);
    if (!range) throw new RangeError(`not an IP address or CIDR range: ${text}`);
    return range;
  });
}

/** Builds a policy from config lists (`ip_range_blacklist`, `ip_range_whitelist`). */
export function addressPolicy(
  blacklist: readonly string[],
  whitelist: readonly string[],
): AddressPolicy {
  return { blacklist: parseIpRanges(blacklist), whitelist: parseIpRanges(whitelist) };
}

/** True when `range` contains `ip` (families must match; mapped IPv6 is IPv4). */
export function rangeContains(range: IpRange, ip: IpAddress): boolean {
  if (range.family !== ip.family) return false;
  const shift = BigInt(BITS[range.family] - range.prefix);
  return ip.value >> shift === range.network >> shift;
}

/**
 * True when an outbound connection to `ip` is allowed: it parses as an IP
 * address, is not unspecified, and is whitelisted or not blacklisted.
 * Anything that does not parse is refused (fail closed).
 */
export function isAllowedAddress(ip: string, policy: AddressPolicy): boolean {
  const address = parseIp(ip);
  if (!address || isUnspecified(address)) return false;
  if (policy.whitelist.some((range) => rangeContains(range, address))) return true;
  return !policy.blacklist.some((range) => rangeContains(range, address));
}

function isUnspecified(address: IpAddress): boolean {
  return address.family === 4 ? address.value >> 24n === 0n : address.value === 0n;
}

function makeRange(family: 4 | 6, value: bigint, prefix: number): IpRange {
  const shift = BigInt(BITS[family] - prefix);
  return { family, network: (value >> shift) << shift, prefix };
}

function parseIpv4(text: string): bigint | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    if (!OCTET.test(part) || Number(part) > 255) return undefined;
    value = (value << 8n) | BigInt(part);
  }
  return value;
}

/** RFC 4291 text forms: full, `::`-compressed, and with a trailing dotted IPv4. */
function parseIpv6(input: string): bigint | undefined {
  const zone = input.indexOf("%");
  const text = zone === -1 ? input : input.slice(0, zone);
  if (zone === 0 || text.length > 45) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const head = groupsOf(halves[0]!);
  const tail = halves.length === 2 ? groupsOf(halves[1]!) : [];
  if (!head || !tail) return undefined;
  const count = head.length + tail.length;
  if (halves.length === 1 ? count !== 8 : count > 7) return undefined;
  const groups = [...head, ...Array<bigint>(8 - count).fill(0n), ...tail];
  return groups.reduce((acc, group) => (acc << 16n) | group, 0n);
}

/** 16-bit groups of one side of `::`; a final dotted IPv4 counts as two groups. */
function groupsOf(side: string): bigint[] | undefined {
  if (side === "") return [];
  const parts = side.split(":");
  const groups: bigint[] = [];
  for (const [index, part] of parts.entries()) {
    if (index === parts.length - 1 && part.includes(".")) {
      const v4 = parseIpv4(part);
      if (v4 === undefined) return undefined;
      groups.push(v4 >> 16n, v4 & 0xffffn);
    } else if (HEX_GROUP.test(part)) {
      groups.push(BigInt(`0x${part}`));
    } else {
      return undefined;
    }
  }
  return groups;
}
