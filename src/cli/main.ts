#!/usr/bin/env node
/**
 * The `mxcd` command line. User-facing output goes to the terminal; the
 * server itself logs structured JSON.
 */
import { Command, Option } from "commander";
import { MXCD_VERSION } from "../version.js";

const DEFAULT_CONFIG = "mxcd.yaml";

/**
 * An action that loads its command's module only when that command runs, so
 * `mxcd serve` never loads what other commands need (the S3 import source,
 * the store migration...): issue 15, "Memory at rest".
 */
function lazy<M, K extends keyof M & string>(load: () => Promise<M>, name: K) {
  return async (...args: unknown[]): Promise<void> => {
    const command = (await load())[name] as (...args: unknown[]) => unknown;
    await command(...args);
  };
}

const program = new Command()
  .name("mxcd")
  .description("mxcd: a Matrix media repository with Synapse's media admin API")
  .version(MXCD_VERSION)
  .showHelpAfterError();

program
  .command("serve")
  .description("run the server (creates a default config on first run, runs migrations)")
  .option("-c, --config <file>", "config file", DEFAULT_CONFIG)
  .action(async (options: { config: string }) => {
    // Before the server's modules load: their start-up garbage must not grow the heap for good.
    const release = (
      await import("./startup-young-generation.js")
    ).holdYoungGenerationDuringStartup();
    await (await import("./serve-command.js")).serveCommand(options.config, release);
  });

program
  .command("generate-config")
  .description("print (or write) a config for the embedded default shape")
  .option("--server-name <name>", "server_name to put in it", "localhost")
  .option("--port <port>", "port to listen on", "8008")
  .option("-o, --output <file>", "write to this file instead of standard output")
  .action(lazy(() => import("./config-commands.js"), "generateConfigCommand"));

program
  .command("config")
  .description("work with config files")
  .command("check")
  .description("validate a config file; errors name the dotted key")
  .argument("<file>", "config file")
  .action(lazy(() => import("./config-commands.js"), "configCheckCommand"));

program
  .command("register-user")
  .description("create a local user, like Synapse's register_new_matrix_user")
  .option("-c, --config <file>", "config file", DEFAULT_CONFIG)
  .option("-u, --user <localpart>", "user name (asked for when absent)")
  .option("-p, --password <password>", "password (asked for when absent)")
  .addOption(new Option("-a, --admin", "make the user a server admin"))
  .addOption(new Option("--no-admin", "make a normal user (the default)"))
  .option(
    "--url <url>",
    "register through a running server's shared-secret API instead of the database",
  )
  .action(lazy(() => import("./register-user-command.js"), "registerUserCommand"));

program
  .command("migrate")
  .description("apply pending schema migrations (serve does this too)")
  .option("-c, --config <file>", "config file", DEFAULT_CONFIG)
  .action(async (options: { config: string }) =>
    (await import("./migrate-command.js")).migrateCommand(options.config),
  );

const jobs = program
  .command("jobs")
  .description("list background jobs with their status and progress (docs/jobs.md)")
  .option("-c, --config <file>", "config file", DEFAULT_CONFIG)
  .action(async (options: { config: string }) =>
    (await import("./jobs-command.js")).jobsCommand(options.config),
  );

jobs
  .command("run")
  .description("run unfinished background jobs to completion in the foreground")
  .option("-c, --config <file>", "config file")
  .action(async (options: { config?: string }) =>
    (await import("./jobs-command.js")).jobsRunCommand(
      options.config ?? jobs.opts<{ config: string }>().config,
    ),
  );

const media = program.command("media").description("work with the media store");

media
  .command("retention")
  .description("list (--dry-run) or delete now what media_retention deletes (docs/media.md)")
  .option("-c, --config <file>", "config file", DEFAULT_CONFIG)
  .option("--dry-run", "list what would be deleted, with a summary; change nothing")
  .action(lazy(() => import("./media-retention-command.js"), "mediaRetentionCommand"));

media
  .command("migrate-store")
  .description(
    "copy every media blob to another store (e.g. filesystem to S3), verified, resumable",
  )
  .requiredOption("--from <file>", "config file whose media_store is the source")
  .requiredOption("--to <file>", "config file whose media_store is the destination")
  .action(lazy(() => import("./media-migrate-store-command.js"), "migrateStoreCommand"));

program
  .command("import")
  .description("bring media from another media repository into mxcd (docs/import.md)")
  .command("synapse")
  .description(
    "import a Synapse media store: metadata of local and remote media and thumbnails, resumable",
  )
  .option("-c, --config <file>", "mxcd's config file", DEFAULT_CONFIG)
  .option("--database <url>", "Synapse's PostgreSQL database (postgres://...), read only")
  .option("--sqlite <path>", "Synapse's SQLite database file, read only")
  .option("--media-store <path>", "Synapse's media_store_path (or the --s3-* options)")
  .option("--reference", "leave the files where they are (the default with a filesystem store)")
  .option("--copy", "copy every file into mxcd's media_store (filesystem or S3), checking SHA-256")
  .option("--verify", "re-read both copies of every imported item and compare; import nothing")
  .option("--s3-config <file>", "synapse-s3-storage-provider's config block (YAML): media in S3")
  .option("--s3-bucket <name>", "the provider's bucket (overrides --s3-config)")
  .option("--s3-prefix <prefix>", "the provider's prefix, prepended as it is")
  .option("--s3-endpoint-url <url>", "the provider's endpoint_url (S3-compatible services)")
  .option("--s3-region-name <region>", "the provider's region_name")
  .option("--dry-run", "count what would be imported; change nothing")
  .option("--batch-size <rows>", "source rows per batch (default 500)")
  .option("--skip-url-cache", "do not import URL-preview media and the preview cache")
  .action(lazy(() => import("./import-synapse-command.js"), "importSynapseCommand"));

program
  .command("appservice")
  .description("the application service that feeds room events to mxcd (attached shape)")
  .command("generate-registration")
  .description("write a registration file (random tokens, every room) for the homeserver")
  .requiredOption("-o, --output <file>", "where to write it (never overwritten)")
  .option("--url <url>", "mxcd's internal address, where the homeserver sends events")
  .option("--id <id>", "the registration's id", "mxcd")
  .option("--sender-localpart <localpart>", "localpart of the service's own user", "_mxcd")
  .action(lazy(() => import("./appservice-command.js"), "generateRegistrationCommand"));

program
  .command("proxy-config")
  .description("reverse-proxy config for the attached shape (docs/attached.md)")
  .command("nginx")
  .description("print nginx locations sending mxcd's routes to mxcd, the rest to the homeserver")
  .option("-c, --config <file>", "mxcd's config (max_upload_size, listen, homeserver.base_url)")
  .option("--mxcd <url>", "mxcd's internal address, e.g. http://127.0.0.1:8009")
  .option("--homeserver <url>", "the homeserver's internal address, e.g. http://127.0.0.1:8008")
  .option("--max-upload-size <size>", "mxcd's max_upload_size, e.g. 50M (default: the config's)")
  .option(
    "--upstream-keepalive",
    "pass to upstream blocks with kept-alive connections (print them with --upstreams)",
  )
  .option("--upstreams", "print only the http-level upstream blocks (for nginx's http block)")
  .action(lazy(() => import("./proxy-config-command.js"), "nginxProxyConfigCommand"));

const signingKey = program
  .command("signing-key")
  .description("federation signing keys (Synapse's signing.key format; docs/attached.md)");

signingKey
  .command("generate")
  .description("write a new key with an mxcd_ id that no homeserver's key can have")
  .requiredOption("-o, --output <file>", "where to write it (never overwritten)")
  .action(lazy(() => import("./signing-key-command.js"), "generateSigningKeyCommand"));

signingKey
  .command("combine")
  .description("write the homeserver's key file with mxcd's key appended (homeserver's first)")
  .requiredOption("--homeserver-key <file>", "the homeserver's signing.key")
  .requiredOption("--mxcd-key <file>", "mxcd's key file (from `signing-key generate`)")
  .requiredOption("-o, --output <file>", "where to write the combined file")
  .option("--force", "replace an existing output file if no key of it is lost")
  .action(lazy(() => import("./signing-key-command.js"), "combineSigningKeysCommand"));

program.parseAsync(process.argv).catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
});
