/**
 * The layer rules of shared/DESIGN.md ("Layers and the way data flows"),
 * checked by `npm run depcheck` (part of `npm run check`):
 *
 *   cli, app.ts            entry points and the composition root
 *   http                   routes: parse → call a service → shape the reply
 *   media, accounts, rooms, jobs, federation, thumbnails, homeserver, previews, importer   services
 *   repositories, db, storage, net                         backends
 *   config, logging, util                                  foundations
 *   domain, identifiers    the Matrix error contract and shared domain types
 *
 * No module imports from a layer above its own.
 */
const SERVICES =
  "^src/(media|accounts|rooms|jobs|federation|thumbnails|homeserver|previews|importer)/";
const BACKENDS = "^src/(repositories|db|storage|net)/";
const FOUNDATIONS = "^src/(config|logging|util)/";
const DOMAIN = "^src/(domain|identifiers)/";

module.exports = {
  forbidden: [
    {
      name: "domain-is-the-bottom",
      comment: "The error contract and domain types import only each other.",
      severity: "error",
      from: { path: DOMAIN },
      to: { path: "^src/", pathNot: DOMAIN },
    },
    {
      name: "foundations-below-backends",
      comment: "Config, logging and utilities know no service, route or repository.",
      severity: "error",
      from: { path: FOUNDATIONS },
      to: { path: [SERVICES, "^src/(http|cli|repositories)/", "^src/app\\.ts$"] },
    },
    {
      name: "backends-below-services",
      comment: "Repositories, the database, blob stores and the outbound client know no service.",
      severity: "error",
      from: { path: BACKENDS },
      to: { path: [SERVICES, "^src/(http|cli)/", "^src/app\\.ts$"] },
    },
    {
      name: "services-below-http",
      comment: "Services never see HTTP types; they throw MatrixError from src/domain.",
      severity: "error",
      from: { path: SERVICES },
      to: { path: ["^src/(http|cli)/", "^src/app\\.ts$"] },
    },
    {
      name: "routes-call-services",
      comment: "Routes never touch SQL: no repository or database import in src/http.",
      severity: "error",
      from: { path: "^src/http/" },
      to: { path: "^src/(repositories|db)/" },
    },
    {
      name: "http-below-entry-points",
      severity: "error",
      from: { path: "^src/http/" },
      to: { path: ["^src/cli/", "^src/app\\.ts$"] },
    },
    {
      name: "no-circular",
      comment:
        "No import cycles at run time; a backend importing its seam's types while the seam's factory imports the backend is fine.",
      severity: "error",
      from: { path: "^src/" },
      to: { circular: true, viaOnly: { dependencyTypesNot: ["type-only"] } },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
  },
};
