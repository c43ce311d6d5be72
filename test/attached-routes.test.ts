/**
 * The attached mode's route table (attached-mode.md §6): what mxcd serves
 * when it sits behind a proxy in front of a homeserver, and what it leaves
 * to the homeserver.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isAttachedRoute } from "../src/http/attached-routes.js";

describe("attached route table", () => {
  it("serves the media routes, their admin routes and the application-service API", () => {
    for (const path of [
      "/_matrix/media/v3/upload",
      "/_matrix/media/r0/download/:serverName/:mediaId",
      "/_matrix/media/v1/create",
      "/_matrix/client/v1/media/thumbnail/:serverName/:mediaId",
      "/_matrix/client/v1/media/config",
      "/_matrix/federation/v1/media/download/:mediaId",
      "/_synapse/admin/v1/purge_media_cache",
      "/_synapse/admin/v1/room/:roomId/media",
      "/_synapse/admin/v1/room/:roomId/media/quarantine",
      "/_synapse/admin/v1/quarantine_media/:roomId",
      "/_synapse/admin/v1/user/:userId/media/quarantine",
      "/_synapse/admin/v1/media/:serverName/:mediaId",
      "/_synapse/admin/v1/media/quarantine_changes",
      "/_synapse/admin/v1/media/protect/:mediaId",
      "/_synapse/admin/v1/users/:userId/media",
      "/_synapse/admin/v1/statistics/users/media",
      "/_matrix/app/v1/transactions/:txnId",
      "/health",
      "/metrics",
    ]) {
      assert.ok(isAttachedRoute(path), path);
    }
  });

  it("leaves accounts, rooms, profiles, keys and other admin routes to the homeserver", () => {
    for (const path of [
      "/_matrix/client/v3/login",
      "/_matrix/client/r0/register",
      "/_matrix/client/versions",
      "/_matrix/client/v3/account/whoami",
      "/_matrix/client/v3/createRoom",
      "/_matrix/client/v3/profile/:userId",
      "/_matrix/client/v3/media/config",
      "/_matrix/key/v2/server",
      "/_synapse/admin/v1/rooms",
      "/_synapse/admin/v1/rooms/:roomId",
      "/_synapse/admin/v2/users/:userId",
      "/_synapse/admin/v1/users/:userId/login",
      "/_synapse/admin/v1/register",
      "/_synapse/admin/v1/server_version",
      "/_synapse/admin/v1/statistics/users/media/extra",
      "/healthz",
    ]) {
      assert.ok(!isAttachedRoute(path), path);
    }
  });
});
