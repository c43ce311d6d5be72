/**
 * The config `mxcd generate-config` writes and `mxcd serve` creates on first
 * run: the embedded default (SQLite and files under ./data) with a fresh
 * random registration secret. A test parses it against the schema.
 */
import { randomBytes } from "node:crypto";

export interface SampleConfigOptions {
  serverName?: string;
  port?: number;
}

/** YAML text of a working embedded-default config, with comments. */
export function sampleConfig(options: SampleConfigOptions = {}): string {
  const serverName = options.serverName ?? "localhost";
  const port = options.port ?? 8008;
  const secret = randomBytes(24).toString("base64url");
  return `# mxcd configuration. Every option is described in docs/configuration.md.

# The domain in mxc:// URIs and user ids. Changing it later orphans existing media.
server_name: "${serverName}"

listen:
  host: "127.0.0.1"
  port: ${port}

# Embedded default: SQLite. Scaled out: { engine: postgres, url: "postgres://user:pass@host/mxcd" }
database:
  engine: sqlite
  path: "./data/mxcd.sqlite"

# Media bytes, in Synapse's media store layout.
media_store:
  engine: filesystem
  path: "./data/media"

# Enables /_synapse/admin/v1/register and \`mxcd register-user --url\`. Keep it secret.
registration_shared_secret: "${secret}"

log_level: info

# Durations always carry a unit: "500ms", "30s", "5m", "1h", "2d".
# How long SIGTERM waits for in-flight requests before closing them.
shutdown_grace_period: "10s"
`;
}
