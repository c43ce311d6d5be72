/**
 * The Fastify side of X-Matrix authentication, for federation routes:
 * `const origin = await requireFederationOrigin(deps.federationAuth, request)`
 * in a handler (or a preHandler: the JSON body must be parsed already).
 */
import type { FastifyRequest } from "fastify";
import type { FederationAuth } from "../federation/federation-auth.js";

/**
 * The origin server of a correctly X-Matrix-signed request, or
 * MatrixError 401 M_UNAUTHORIZED (see `FederationAuth.authenticate`).
 * The signed `uri` is the request target exactly as it arrived
 * (`request.raw.url`, before any decoding or normalising), and every
 * `Authorization` header counts: Node keeps only the first one in
 * `headers`, so they are read from `headersDistinct`.
 */
export function requireFederationOrigin(
  auth: FederationAuth,
  request: FastifyRequest,
): Promise<string> {
  return auth.authenticate({
    method: request.method,
    uri: request.raw.url ?? request.url,
    headers: { authorization: request.raw.headersDistinct.authorization },
    body: request.body,
  });
}
