/**
 * Global profiles (client-server API "Profiles"), on v3 and r0: read a whole
 * profile or one field; set a field of one's own profile.
 */
import type { FastifyInstance } from "fastify";
import { MatrixError } from "../../domain/matrix-error.js";
import type { ProfileField, ProfileService } from "../../rooms/profile-service.js";
import type { Auth } from "../auth.js";
import { jsonObject } from "../json-body.js";

/** The services behind the profile routes. */
export interface ProfileRouteDeps {
  auth: Auth;
  profiles: ProfileService;
}

const PREFIXES = ["/_matrix/client/v3", "/_matrix/client/r0"] as const;
const FIELDS: readonly ProfileField[] = ["displayname", "avatar_url"];

type UserParams = { Params: { userId: string } };

/** Registers the profile endpoints on both prefixes. */
export function registerProfileRoutes(app: FastifyInstance, deps: ProfileRouteDeps): void {
  for (const prefix of PREFIXES) {
    app.get<UserParams>(`${prefix}/profile/:userId`, async (request) => {
      await deps.auth.requireUser(request);
      return deps.profiles.profile(request.params.userId);
    });

    for (const field of FIELDS) {
      app.get<UserParams>(`${prefix}/profile/:userId/${field}`, async (request) => {
        await deps.auth.requireUser(request);
        const profile = await deps.profiles.profile(request.params.userId);
        return profile[field] === undefined ? {} : { [field]: profile[field] };
      });

      app.put<UserParams>(`${prefix}/profile/:userId/${field}`, async (request) => {
        const { userId } = await deps.auth.requireUser(request);
        const value = jsonObject(request.body)[field];
        if (typeof value !== "string") {
          throw new MatrixError("M_BAD_JSON", `Missing or invalid '${field}'`);
        }
        await deps.profiles.set(userId, request.params.userId, field, value);
        return {};
      });
    }
  }
}
