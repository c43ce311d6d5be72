/**
 * `mxcd proxy-config nginx`: prints the reverse-proxy config of the attached
 * shape (docs/attached.md) from mxcd's route table. The upstreams and the
 * upload limit come from the options, else from mxcd's config (`-c`), else
 * (the limit only) from mxcd's default.
 */
import { resolve } from "node:path";
import { loadConfigFile, validateConfig } from "../config/load-config.js";
import { parseSize } from "../config/units.js";
import { nginxProxyConfig, nginxUpstreamConfig } from "../http/nginx-proxy-config.js";

export interface ProxyConfigOptions {
  config?: string;
  mxcd?: string;
  homeserver?: string;
  maxUploadSize?: string;
  /** Pass to the upstream blocks of `--upstreams` (kept-alive connections). */
  upstreamKeepalive?: boolean;
  /** Print only the http-level upstream blocks. */
  upstreams?: boolean;
}

/** Hosts that mean "every interface": nginx must be given a real address. */
const WILDCARDS = new Set(["0.0.0.0", "::", "[::]"]);

export function nginxProxyConfigCommand(options: ProxyConfigOptions): void {
  const config =
    options.config !== undefined
      ? loadConfigFile(options.config)
      : validateConfig({ server_name: "localhost" }, "mxcd's defaults");
  const listen = config.listen;
  const mxcd =
    options.mxcd ??
    (options.config !== undefined && !WILDCARDS.has(listen.host)
      ? `http://${listen.host.includes(":") ? `[${listen.host}]` : listen.host}:${listen.port}`
      : undefined);
  if (mxcd === undefined) {
    throw new Error("give mxcd's internal address with --mxcd (e.g. http://127.0.0.1:8009)");
  }
  const homeserver = options.homeserver ?? config.homeserver?.base_url;
  if (homeserver === undefined) {
    throw new Error(
      "give the homeserver's internal address with --homeserver (e.g. http://127.0.0.1:8008)",
    );
  }
  let maxUploadSize = config.max_upload_size;
  if (options.maxUploadSize !== undefined) {
    const parsed = parseSize(options.maxUploadSize);
    if (parsed === undefined)
      throw new Error(`--max-upload-size: not a size: ${options.maxUploadSize}`);
    maxUploadSize = parsed;
  }
  // media_store.accel_redirect: the internal location nginx sends files from.
  const store = config.media_store;
  const accel =
    store.engine === "filesystem" && store.accel_redirect
      ? { location: store.accel_redirect.location, root: resolve(store.path) }
      : undefined;
  if (options.upstreams) {
    process.stdout.write(nginxUpstreamConfig({ mxcd, homeserver }));
    return;
  }
  process.stdout.write(
    nginxProxyConfig({
      mxcd,
      homeserver,
      maxUploadSize,
      ...(accel && { accelRedirect: accel }),
      ...(options.upstreamKeepalive && { upstreamKeepalive: true }),
    }),
  );
}
