/**
 * Synapse's shared-secret registration (`/_synapse/admin/v1/register`) and
 * `/_synapse/admin/v1/server_version`. Registration needs no access token:
 * the HMAC is the credential.
 */
import type { FastifyInstance } from "fastify";
import type { SharedSecretRegistration } from "../../accounts/shared-secret-registration.js";
import { MXCD_VERSION } from "../../version.js";
import { jsonObject } from "../json-body.js";

export interface RegistrationRouteDeps {
  serverName: string;
  registration: SharedSecretRegistration;
}

export function registerRegistrationAdminRoutes(
  app: FastifyInstance,
  deps: RegistrationRouteDeps,
): void {
  app.get("/_synapse/admin/v1/register", async () => ({
    nonce: await deps.registration.newNonce(),
  }));

  app.post("/_synapse/admin/v1/register", async (request) => {
    const session = await deps.registration.register(jsonObject(request.body));
    return {
      user_id: session.userId,
      access_token: session.accessToken,
      home_server: deps.serverName,
      device_id: session.deviceId,
    };
  });

  app.get("/_synapse/admin/v1/server_version", async () => ({
    server_version: `mxcd ${MXCD_VERSION}`,
  }));
}
