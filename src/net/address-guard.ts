/**
 * The address check of outbound connections, as a socket `lookup` hook
 * (http.request's `lookup` option): the addresses it checks are the ones
 * the socket then connects to, so a DNS answer that changes between a check
 * and the connect (rebinding) cannot slip through. Every resolved address
 * must be allowed, as in Synapse: one forbidden address refuses the host.
 */
import { isIP, type LookupFunction } from "node:net";
import type { Dns, ResolvedAddress } from "./dns.js";
import { type AddressPolicy, isAllowedAddress } from "./ip-ranges.js";
import { DnsLookupError, ForbiddenAddressError } from "./outbound-errors.js";

/**
 * Throws ForbiddenAddressError when `hostname` is an IP literal the policy
 * refuses. Node skips the lookup hook for IP literals, so these are checked
 * up front, with Node's own `isIP` (the test that decides whether the hook
 * runs).
 */
export function checkLiteralAddress(hostname: string, target: string, policy: AddressPolicy) {
  if (isIP(hostname) !== 0 && !isAllowedAddress(hostname, policy)) {
    throw new ForbiddenAddressError(target, hostname);
  }
}

/**
 * Every address of `hostname`, if all are allowed. Rejects with
 * DnsLookupError when it does not resolve, ForbiddenAddressError when any
 * address is refused.
 */
export async function resolveAllowed(
  dns: Pick<Dns, "lookup">,
  policy: AddressPolicy,
  hostname: string,
): Promise<ResolvedAddress[]> {
  let addresses: ResolvedAddress[];
  try {
    addresses = await dns.lookup(hostname);
  } catch (error) {
    throw new DnsLookupError(hostname, (error as NodeJS.ErrnoException).code, { cause: error });
  }
  if (addresses.length === 0) throw new DnsLookupError(hostname, "ENOTFOUND");
  const forbidden = addresses.find((a) => !isAllowedAddress(a.address, policy));
  if (forbidden) throw new ForbiddenAddressError(hostname, forbidden.address);
  return addresses;
}

/** A socket lookup hook that resolves through `dns` and refuses forbidden addresses. */
export function guardedLookup(dns: Pick<Dns, "lookup">, policy: AddressPolicy): LookupFunction {
  return (hostname, options, callback) => {
    resolveAllowed(dns, policy, hostname).then(
      (addresses) => {
        const family = options.family === 4 || options.family === 6 ? options.family : undefined;
        const wanted = family ? addresses.filter((a) => a.family === family) : addresses;
        const first = wanted[0];
        if (!first) callback(new DnsLookupError(hostname, "ENOTFOUND"), "", 0);
        else if (options.all) callback(null, wanted);
        else callback(null, first.address, first.family);
      },
      (error: Error) => callback(error, "", 0),
    );
  };
}
